// Subclusters of an extended-L2 image (qcow2 spec "Extended L2 Entries"; QEMU
// qcow2_get_subcluster_type). The on-disk bitmap has an allocation bit and a
// zero bit per subcluster; both set is invalid (QCOW2_SUBCLUSTER_INVALID), so
// the model keeps one of three states per subcluster instead of two bits.

/** Subclusters in every cluster of an extended-L2 image (QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER). */
export const subclustersPerCluster = 32;

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
