// writeZeroes and discard per docs/semantics.md (QEMU qcow2_subcluster_zeroize,
// zero_in_l2_slice, qcow2_cluster_discard, discard_in_l2_slice).
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assertNever } from './assert.js';
import { backingReadsAsZeros, readsAsZeros, writeGuest } from './data-path.js';
import { discardClustersExtended, writeZeroesExtended } from './subcluster-zero.js';
import { eachCluster, type RuledEntry } from './each-cluster.js';

/** A rule on standard entries (no bitmap) as an eachCluster rule. */
function standard(rule: (old: L2Entry) => L2Entry | undefined): (old: L2Entry) => RuledEntry | undefined {
  return (old) => {
    const entry = rule(old);
    return entry === undefined ? undefined : { entry };
  };
}

/** Whether a kind owns a host cluster. */
function isAllocated(e: L2Entry): boolean {
  switch (e.kind) {
    case 'normal':
    case 'zero-alloc':
    case 'compressed':
      return true;
    case 'unallocated':
    case 'zero-plain':
      return false;
    default:
      return assertNever(e, 'L2 entry');
  }
}

/**
 * Guest discard (v3: zero-plain, v2: unallocated); full discard (shrink,
 * commit): unallocated. With a backing file every cluster is discarded, even
 * an unallocated one (discard_in_l2_slice: `bs->backing || allocated`), so on
 * v3 the backing no longer shows through (a v2 image with a backing file is
 * never guest-discarded: discardGuest).
 */
export function discardRule(s: ImageState, full: boolean): (old: L2Entry) => L2Entry | undefined {
  return (old) => {
    if (full) return old.kind === 'unallocated' ? undefined : { kind: 'unallocated' };
    if (!isAllocated(old) && s.backingName === undefined) return undefined;
    const next: L2Entry = s.g.version === 3 ? { kind: 'zero-plain' } : { kind: 'unallocated' };
    return next.kind === old.kind ? undefined : next;
  };
}

function zeroRule(s: ImageState, unmap: boolean): (old: L2Entry) => L2Entry | undefined {
  if (s.g.version === 2) return discardRule(s, false); // no zero flag: QEMU resorts to discard
  return (old) => {
    switch (old.kind) {
      case 'normal':
      case 'zero-alloc':
        return unmap ? { kind: 'zero-plain' } : { kind: 'zero-alloc', offset: old.offset, copied: old.copied };
      case 'compressed':
      case 'unallocated':
        return { kind: 'zero-plain' };
      case 'zero-plain':
        return undefined;
      default:
        return assertNever(old, 'L2 entry');
    }
  };
}

export async function discardGuest(s: ImageState, offset: number, length: number, full = false): Promise<void> {
  const cs = s.g.clusterSize;
  const size = s.header.size;
  const first = Math.ceil(offset / cs);
  // The last cluster of the disk counts as whole when covered up to virtualSize.
  const end = offset + length === size ? Math.ceil(size / cs) : Math.floor((offset + length) / cs);
  if (first >= end) return;
  // qcow2_co_pdiscard: -ENOTSUP for a version 2 image with a backing file (it
  // has no zero clusters, and unallocating would let the backing show through)
  if (!full && s.g.version === 2 && s.backingName !== undefined) return;
  if (s.g.extendedL2) return discardClustersExtended(s, first, end, full);
  await eachCluster(s, first, end, standard(discardRule(s, full)));
}

/** Zeros written as data per chunk when the zero flag cannot be used (QEMU's bounce buffer is capped too). */
const zeroWriteChunkBytes = 1024 * 1024;

/**
 * Whether guest cluster `cluster` outside [from, to) reads as zeros by its
 * entry: a zero cluster, or an unallocated one whose backing chain reports
 * zeros there by block status, as qcow2_co_pwrite_zeroes asks is_zero of the
 * head and the tail (data that happens to be zeros does not count).
 */
async function restReadsAsZeros(s: ImageState, cluster: number, from: number, to: number): Promise<boolean> {
  const entry = await s.map.entry(cluster);
  if (readsAsZeros(s, entry, cluster)) return true;
  if (entry.kind !== 'unallocated') return false;
  const start = cluster * s.g.clusterSize;
  const end = Math.min(start + s.g.clusterSize, s.header.size);
  return (await backingReadsAsZeros(s, start, from)) && (await backingReadsAsZeros(s, to, end));
}

export async function writeZeroesGuest(s: ImageState, offset: number, length: number, unmap: boolean): Promise<void> {
  if (s.g.extendedL2) return writeZeroesExtended(s, offset, length, unmap);
  const cs = s.g.clusterSize;
  if (s.g.version === 2 && s.backingName !== undefined) {
    // v2 has no zero flag, and discarding would let the backing show through:
    // qcow2_subcluster_zeroize returns ENOTSUP and the block layer writes zeros.
    for (let at = offset; at < offset + length; at += zeroWriteChunkBytes) {
      await writeGuest(s, at, new Uint8Array(Math.min(zeroWriteChunkBytes, offset + length - at)));
    }
    return;
  }
  const end = offset + length;
  // Pieces at cluster boundaries; a piece ending at virtualSize reaches its cluster end.
  const pieceIsWhole = (from: number, to: number) => from % cs === 0 && (to % cs === 0 || to === s.header.size);
  let pos = offset;
  let wholeFrom = -1;
  const flushWhole = async (until: number) => {
    if (wholeFrom >= 0) await eachCluster(s, wholeFrom, until, standard(zeroRule(s, unmap)));
    wholeFrom = -1;
  };
  while (pos < end) {
    const cluster = Math.floor(pos / cs);
    const to = Math.min(end, (cluster + 1) * cs);
    let whole = pieceIsWhole(pos, to);
    if (!whole) {
      // A partial piece of a cluster whose rest already reads as zeros zeroizes it whole.
      whole = await restReadsAsZeros(s, cluster, pos, to);
    }
    if (whole) {
      if (wholeFrom < 0) wholeFrom = cluster;
    } else {
      await flushWhole(cluster);
      await writeGuest(s, pos, new Uint8Array(to - pos));
    }
    pos = to;
  }
  await flushWhole(Math.floor((end - 1) / cs) + 1);
}
