// Snapshot refcount overflow that depends on how compressed streams are packed.
// The model gives each compressed stream a host cluster of its own, so its
// count of references per host cluster is a lower bound: QEMU's
// qcow2_alloc_bytes packs several streams into one host cluster, which then
// holds one reference per stream. Whether a snapshot create or revert overflows
// a narrow refcount is therefore decided by the packing on disk, which the model
// cannot know (it does not compress). It is stated exactly on the image:
// qcow2_update_snapshot_refcount(+1) refuses when some host cluster's stored
// refcount plus the references one walk of the L1 adds (its L2 tables, each data
// cluster, each host cluster a compressed stream touches) exceeds 2^bits - 1.
import type { DecodedImage, DecodedL1 } from './decode/image.js';
import type { Op } from './ops.js';
import { findSnapshotByIdOrName } from './snapshot-ops.js';
import type { L1Table, ModelState } from './state.js';

/**
 * The L1 table a snapshot op would add a walk of when the model lets it
 * succeed and the walk reaches a compressed stream (so the outcome may depend
 * on packing), else undefined: `{ active }` for snapshot create, `{ snapshot: i }`
 * for a revert to the i-th snapshot.
 */
export function packingDecidesOverflow(state: ModelState, op: Op): { readonly snapshot?: number } | undefined {
  let l1: L1Table;
  let snapshot: number | undefined;
  if (op.kind === 'snapshotCreate') {
    l1 = state.active;
  } else if (op.kind === 'snapshotRevert') {
    snapshot = findSnapshotByIdOrName(state, op.name);
    const found = state.snapshots[snapshot];
    if (found === undefined) return undefined;
    l1 = found.l1;
  } else {
    return undefined;
  }
  const reachesStream = l1.some((table) => table !== undefined && [...table.entries.values()].some((e) => e.kind === 'compressed'));
  if (!reachesStream) return undefined;
  return snapshot === undefined ? {} : { snapshot };
}

/**
 * The first host cluster (index) whose refcount one more walk of `l1` would
 * push past 2^refcount_bits - 1 in `image`, or undefined when none would
 * (qcow2_update_snapshot_refcount with addend +1, as the image is packed).
 */
export function packedOverflowCluster(image: DecodedImage, l1: DecodedL1): number | undefined {
  const cs = image.header.clusterSize;
  const max = 2n ** BigInt(2 ** image.header.refcountOrder) - 1n;
  const added = new Map<number, bigint>();
  const add = (cluster: number) => added.set(cluster, (added.get(cluster) ?? 0n) + 1n);
  for (const l2Offset of l1.l2Offsets) {
    if (l2Offset === 0) continue;
    add(l2Offset / cs);
    for (const entry of image.l2Tables.get(l2Offset) ?? []) {
      if (entry.host === undefined || (entry.kind !== 'normal' && entry.kind !== 'zero-alloc' && entry.kind !== 'compressed')) continue;
      const last = entry.kind === 'compressed' ? entry.host + Math.max(1, entry.length ?? 1) - 1 : entry.host;
      for (let c = Math.floor(entry.host / cs); c <= Math.floor(last / cs); c++) add(c);
    }
  }
  for (const [cluster, n] of added) if (image.refcounts.refcount(cluster) + n > max) return cluster;
  return undefined;
}
