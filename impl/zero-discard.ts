// writeZeroes and discard per docs/semantics.md (QEMU qcow2_subcluster_zeroize,
// zero_in_l2_slice, qcow2_cluster_discard, discard_in_l2_slice).
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assertNever } from './assert.js';
import { writeGuest } from './data-path.js';
import { discardClustersExtended, writeZeroesExtended } from './subcluster-zero.js';

type ClusterRule = (old: L2Entry) => L2Entry | undefined;

/** Apply a per-cluster rule to guest clusters [first, end), privatizing each L2 table once. */
async function eachCluster(s: ImageState, first: number, end: number, rule: ClusterRule): Promise<void> {
  const n = s.g.l2EntriesCount;
  let c = first;
  while (c < end) {
    const stop = Math.min(end, (Math.floor(c / n) + 1) * n);
    const table = await s.map.privatize(s.map.l1Index(c));
    for (; c < stop; c++) {
      const old = table.get(c % n);
      const next = rule(old);
      if (next === undefined) continue;
      await s.map.setEntry(c, next);
      if (!keepsCluster(old, next)) await s.map.release(old);
    }
  }
}

function keepsCluster(old: L2Entry, next: L2Entry): boolean {
  return (old.kind === 'normal' || old.kind === 'zero-alloc') && next.kind === 'zero-alloc' && next.offset === old.offset;
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

/** Guest discard (v3: zero-plain, v2: unallocated); full discard (shrink): unallocated. */
export function discardRule(s: ImageState, full: boolean): ClusterRule {
  return (old) => {
    if (full) return old.kind === 'unallocated' ? undefined : { kind: 'unallocated' };
    if (!isAllocated(old)) return undefined;
    return s.g.version === 3 ? { kind: 'zero-plain' } : { kind: 'unallocated' };
  };
}

function zeroRule(s: ImageState, unmap: boolean): ClusterRule {
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
  if (s.g.extendedL2) return discardClustersExtended(s, first, end, full);
  await eachCluster(s, first, end, discardRule(s, full));
}

export async function writeZeroesGuest(s: ImageState, offset: number, length: number, unmap: boolean): Promise<void> {
  if (s.g.extendedL2) return writeZeroesExtended(s, offset, length, unmap);
  const cs = s.g.clusterSize;
  const end = offset + length;
  // Pieces at cluster boundaries; a piece ending at virtualSize reaches its cluster end.
  const pieceIsWhole = (from: number, to: number) => from % cs === 0 && (to % cs === 0 || to === s.header.size);
  let pos = offset;
  let wholeFrom = -1;
  const flushWhole = async (until: number) => {
    if (wholeFrom >= 0) await eachCluster(s, wholeFrom, until, zeroRule(s, unmap));
    wholeFrom = -1;
  };
  while (pos < end) {
    const cluster = Math.floor(pos / cs);
    const to = Math.min(end, (cluster + 1) * cs);
    let whole = pieceIsWhole(pos, to);
    if (!whole) {
      const kind = (await s.map.entry(cluster)).kind;
      // A partial piece of a cluster that already reads as zeros zeroizes it whole.
      whole = kind === 'unallocated' || kind === 'zero-plain' || kind === 'zero-alloc';
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
