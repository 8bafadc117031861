// resize (QEMU qcow2_co_truncate) per docs/semantics.md, including the fix for the
// stale tail QEMU 7.2 exposes when growing an image whose size is not cluster aligned.
import type { ImageState } from './state.js';
import { Qcow2Error } from './errors.js';
import { sizeToL1 } from './geometry.js';
import { assert } from './assert.js';
import { clusterView, writeGuest } from './data-path.js';
import { subclusterRun } from './subcluster-write.js';
import { discardGuest, writeZeroesGuest } from './zero-discard.js';
import { flushMetadata } from './flush.js';

export function checkResize(s: ImageState, newSize: number): void {
  if (!Number.isSafeInteger(newSize) || newSize < 0 || newSize % 512 !== 0) {
    throw new Qcow2Error('invalid-argument', `new size ${newSize} is not a non-negative multiple of 512`);
  }
  if (s.g.version === 2 && s.snapshots.length > 0) {
    throw new Qcow2Error('unsupported', "can't resize a version 2 image which has snapshots");
  }
  // a growth inside the old last cluster writes explicit zeros only, which version 2 can do
  if (s.g.version === 2 && newSize > Math.ceil(s.header.size / s.g.clusterSize) * s.g.clusterSize && backingCoversGrowth(s)) {
    throw new Qcow2Error('unsupported', 'failed to zero out new clusters: a version 2 image cannot hide its backing file past its old size (QEMU 7.2 refuses too)');
  }
}

/**
 * Growing over a backing file longer than the old size must not let its data
 * show in the new area (bdrv_co_truncate adds BDRV_REQ_ZERO_WRITE): the new
 * clusters become zero clusters, which version 2 does not have.
 */
function backingCoversGrowth(s: ImageState): boolean {
  return s.backing !== undefined && s.backing.size > s.header.size;
}

/**
 * With subclusters the zeros of a growth over a backing file start at the next
 * subcluster boundary, so a disk that ended inside a compressed cluster needs
 * zero subclusters in it: qcow2_subcluster_zeroize refuses them and QEMU 7.2
 * fails the resize ("Failed to zero out new clusters: Operation not supported").
 */
async function checkZeroHead(s: ImageState, oldSize: number): Promise<void> {
  const cs = s.g.clusterSize;
  const sc = s.g.subclusterSize;
  const zeroStart = Math.ceil(oldSize / sc) * sc;
  if (!s.g.extendedL2 || zeroStart % cs === 0) return;
  const entry = await s.map.entry(Math.floor(oldSize / cs));
  if (entry.kind === 'compressed') {
    throw new Qcow2Error('unsupported', `failed to zero out new clusters: guest cluster ${Math.floor(oldSize / cs)} is compressed and cannot take zero subclusters (QEMU 7.2 refuses too)`);
  }
}

/**
 * Resize to `newSize` bytes. `zeroTail: false` skips zeroing the old last
 * cluster's tail on growth: a snapshot revert replaces the whole active L1
 * right after, so that COW would only allocate clusters to free them again.
 */
export async function resizeImage(s: ImageState, newSize: number, options: { zeroTail: boolean } = { zeroTail: true }): Promise<void> {
  checkResize(s, newSize);
  const oldSize = s.header.size;
  if (newSize === oldSize) return;
  const cs = s.g.clusterSize;
  if (newSize > oldSize) {
    // A snapshot revert (zeroTail false) sets the size without truncating, as qcow2_snapshot_goto.
    const zeroWrite = options.zeroTail && backingCoversGrowth(s);
    if (zeroWrite) await checkZeroHead(s, oldSize);
    await s.map.growL1(sizeToL1(s.g, newSize));
    s.header.size = newSize;
    s.headerDirty = true;
    if (zeroWrite) {
      // qcow2_co_truncate with BDRV_REQ_ZERO_WRITE: zero (sub)clusters from the
      // next subcluster boundary, then explicit zeros for the unaligned head.
      const sc = s.g.subclusterSize;
      const zeroStart = Math.ceil(oldSize / sc) * sc;
      if (newSize > zeroStart) await writeZeroesGuest(s, zeroStart, newSize - zeroStart, false);
      if (zeroStart > oldSize) await writeGuest(s, oldSize, new Uint8Array(Math.min(zeroStart, newSize) - oldSize));
      return;
    }
    if (options.zeroTail && oldSize % cs !== 0) {
      const tailEnd = Math.min(newSize, (Math.floor(oldSize / cs) + 1) * cs);
      for (const [from, to] of await staleTail(s, oldSize, tailEnd)) await writeGuest(s, from, new Uint8Array(to - from));
    }
    return;
  }
  await shrink(s, oldSize, newSize);
}

/**
 * The guest ranges in [oldSize, tailEnd) (inside the old last cluster) that can
 * hold stale bytes: those a host cluster backs. Standard L2: the whole range
 * when the cluster is normal or compressed. Extended L2: a compressed cluster
 * whole, a normal one only its allocated subclusters (merged into runs); zero
 * and unallocated subclusters read zeros already, and QEMU 7.2 leaves them so.
 * Only the runs that hold a byte other than zero.
 */
async function staleTail(s: ImageState, oldSize: number, tailEnd: number): Promise<[number, number][]> {
  const cs = s.g.clusterSize;
  const guestCluster = Math.floor(oldSize / cs);
  assert(tailEnd > oldSize && tailEnd <= (guestCluster + 1) * cs, 'the tail lies inside the old last cluster');
  const entry = await s.map.entry(guestCluster);
  if (entry.kind !== 'normal' && entry.kind !== 'compressed') return [];
  const clusterStart = guestCluster * cs;
  const runs: [number, number][] = [];
  if (!s.g.extendedL2 || entry.kind === 'compressed') {
    runs.push([oldSize, tailEnd]);
  } else {
    const bitmap = await s.map.bitmap(guestCluster);
    for (let at = oldSize; at < tailEnd; ) {
      const run = subclusterRun(s, entry.kind, bitmap, at - clusterStart, tailEnd - at);
      if (run.kind === 'data') runs.push([at, at + run.length]);
      at += run.length;
    }
  }
  assert(runs.every(([from, to]) => oldSize <= from && from < to && to <= tailEnd), 'stale runs inside the tail');
  // a run of zeros (a compressed write of the partial last cluster pads its stream with zeros) is stale in nothing: QEMU and we leave it
  const view = await clusterView(s, entry, guestCluster);
  const stale = runs.filter(([from, to]) => view.subarray(from - clusterStart, to - clusterStart).some((byte) => byte !== 0));
  assert(stale.length <= runs.length, 'stale runs are some of the backed runs');
  return stale;
}

async function shrink(s: ImageState, oldSize: number, newSize: number): Promise<void> {
  const cs = s.g.clusterSize;
  const keepL1 = sizeToL1(s.g, newSize);
  const from = Math.ceil(newSize / cs) * cs;
  // Full discard of the clusters past the new end that live in tables still needed.
  const stillNeededEnd = Math.min(oldSize, keepL1 * cs * s.g.l2EntriesCount);
  if (from < stillNeededEnd) await discardGuest(s, from, stillNeededEnd - from, true);
  // Tables wholly past the new L1 need leave the active L1: the active walk no
  // longer reaches them nor their data (qcow2_shrink_l1_table).
  for (let i = keepL1; i < s.map.l1.size; i++) {
    const offset = s.map.l1.offsets[i] ?? 0;
    if (offset === 0) continue;
    const table = await s.map.l2Cache.get(offset);
    for (let j = 0; j < s.g.l2EntriesCount; j++) await s.map.release(table.get(j));
    s.map.l1.offsets[i] = 0;
    s.map.l1.copied[i] = 0;
    s.map.markL1Dirty(i);
    await s.refcounts.decrement(offset / cs);
  }
  s.header.size = newSize;
  s.headerDirty = true;
  await flushMetadata(s);
  // Give back the file space past the last cluster still in use.
  const end = ((await s.refcounts.lastUsedCluster()) + 1) * cs;
  if (end < (await s.file.length())) await s.file.truncate(end);
}
