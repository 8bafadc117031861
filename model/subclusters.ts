// Subclusters of an extended-L2 image (qcow2 spec "Extended L2 Entries"; QEMU
// qcow2_get_subcluster_type). The on-disk bitmap has an allocation bit and a
// zero bit per subcluster; both set is invalid (QCOW2_SUBCLUSTER_INVALID), so
// the model keeps one of three states per subcluster instead of two bits.

import { subclustersPerCluster } from './decode/extended-l2.js';

export { subclustersPerCluster };

/**
 * - allocated: reads from the cluster's host bytes (allocation bit);
 * - zero: reads as zeros (zero bit);
 * - unallocated: reads from the backing file, zeros without one (neither bit).
 */
export type SubclusterState = 'allocated' | 'zero' | 'unallocated';

/** The 32 states of one cluster, by subcluster index; never mutated. */
export type Subclusters = readonly SubclusterState[];

export function uniformSubclusters(state: SubclusterState): Subclusters {
  return new Array<SubclusterState>(subclustersPerCluster).fill(state);
}

/** `subclusters` with [first, end) set to `state` (a new array). */
export function withSubclusters(subclusters: Subclusters, first: number, end: number, state: SubclusterState): Subclusters {
  if (!(0 <= first && first < end && end <= subclustersPerCluster)) throw new Error(`model invariant: subcluster range ${first}..${end}`);
  return subclusters.map((s, i) => (i >= first && i < end ? state : s));
}

/** Index of the first and one past the last allocated subcluster, or undefined when none is. */
export function allocatedSpan(subclusters: Subclusters): { first: number; end: number } | undefined {
  const first = subclusters.indexOf('allocated');
  if (first < 0) return undefined;
  return { first, end: subclusters.lastIndexOf('allocated') + 1 };
}

/** The on-disk bitmap halves of `subclusters` (bit i = subcluster i), as decodeImage splits them. */
export function bitmapOf(subclusters: Subclusters): { alloc: number; zero: number } {
  let alloc = 0;
  let zero = 0;
  subclusters.forEach((s, i) => {
    if (s === 'allocated') alloc |= 1 << i;
    if (s === 'zero') zero |= 1 << i;
  });
  return { alloc: alloc >>> 0, zero: zero >>> 0 };
}
