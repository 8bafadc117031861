// The subcluster bitmap of an extended L2 entry (incompatible bit 4, QEMU's
// qcow2.txt "Extended L2 Entries"): the second 64 bits of a 128-bit entry. Bits
// 0-31 say which of the 32 subclusters are allocated (read from the host
// cluster), bits 32-63 which read as zeros. Classified per subcluster like
// QEMU's qcow2_get_subcluster_type.
import { assert } from '../assert.js';
import { Qcow2Error } from '../errors.js';
import { subclustersPerCluster } from '../limits.js';
import type { ClusterKind } from './l2-entry.js';

/** Both halves as unsigned 32-bit masks: bit i is subcluster i. Never both set for one subcluster. */
export interface SubclusterBitmap {
  readonly alloc: number;
  readonly zero: number;
}

export const emptyBitmap: SubclusterBitmap = { alloc: 0, zero: 0 };
/** QCOW_L2_BITMAP_ALL_ZEROES: every subcluster reads as zeros. */
export const allZeroBitmap: SubclusterBitmap = { alloc: 0, zero: 0xffffffff };
const allSubclusters = 0xffffffff;

/**
 * How subcluster reads behave: 'data' from the host cluster, 'zero' by the zero
 * bit, 'unallocated' (zeros, or the backing file) and 'compressed' (the whole
 * cluster). QEMU's NORMAL, ZERO_PLAIN/ZERO_ALLOC, UNALLOCATED_PLAIN/ALLOC, COMPRESSED.
 */
export type SubclusterKind = 'data' | 'zero' | 'unallocated' | 'compressed';

/** Mask of subclusters [first, end) (QCOW_OFLAG_SUB_ALLOC_RANGE without the shift). */
export function subclusterRange(first: number, end: number): number {
  assert(Number.isInteger(first) && first >= 0 && end <= subclustersPerCluster, 'subcluster range inside the cluster');
  assert(first <= end, 'subcluster range is not reversed');
  if (first === end) return 0;
  return (end - first === 32 ? allSubclusters : ((1 << (end - first)) - 1) << first) >>> 0;
}

/**
 * Decode the bitmap of an entry whose word is of kind `kind`. A bitmap QEMU's
 * qcow2_get_subcluster_type calls QCOW2_SUBCLUSTER_INVALID (a subcluster both
 * allocated and zero, or allocation bits in an unallocated cluster) is corrupt,
 * as is any bit on a compressed entry (QEMU's check counts it; a read ignores it).
 * Errors: Qcow2Error 'corrupt' naming `where`.
 */
export function decodeBitmap(raw: bigint, kind: ClusterKind, where: string): SubclusterBitmap {
  const alloc = Number(raw & 0xffffffffn);
  const zero = Number(raw >> 32n);
  const bad = (what: string) => new Qcow2Error('corrupt', `${where}: ${what} (subcluster bitmap 0x${raw.toString(16)})`);
  if (kind === 'compressed') {
    if (raw !== 0n) throw bad('compressed cluster with a non-zero subcluster bitmap');
    return emptyBitmap;
  }
  if ((alloc & zero) !== 0) throw bad('subcluster both allocated and zero');
  if (kind === 'unallocated' && alloc !== 0) throw bad('unallocated cluster with allocated subclusters');
  assert(kind === 'normal' || kind === 'unallocated', 'extended entries have no zero flag');
  return { alloc, zero };
}

export function encodeBitmap(b: SubclusterBitmap): bigint {
  assert((b.alloc & b.zero) === 0, 'no subcluster both allocated and zero');
  assert(b.alloc >>> 0 === b.alloc && b.zero >>> 0 === b.zero, 'bitmap halves are unsigned 32-bit');
  return (BigInt(b.zero) << 32n) | BigInt(b.alloc);
}

/** The subclusters of [first, end) marked allocated and no longer zero (qcow2_alloc_cluster_link_l2). */
export function markAllocated(b: SubclusterBitmap, first: number, end: number): SubclusterBitmap {
  const range = subclusterRange(first, end);
  return { alloc: (b.alloc | range) >>> 0, zero: (b.zero & ~range) >>> 0 };
}

/** The subclusters of [first, end) marked zero and no longer allocated (zero_l2_subclusters). */
export function markZero(b: SubclusterBitmap, first: number, end: number): SubclusterBitmap {
  const range = subclusterRange(first, end);
  return { alloc: (b.alloc & ~range) >>> 0, zero: (b.zero | range) >>> 0 };
}

/** qcow2_get_subcluster_type for subcluster `index` of an entry of kind `kind`. */
export function subclusterKind(kind: ClusterKind, b: SubclusterBitmap, index: number): SubclusterKind {
  assert(Number.isInteger(index) && index >= 0 && index < subclustersPerCluster, 'subcluster index inside the cluster');
  if (kind === 'compressed') return 'compressed';
  const bit = 1 << index;
  if ((b.zero & bit) !== 0) return 'zero';
  if ((b.alloc & bit) !== 0) return 'data';
  return 'unallocated';
}

/** Count of trailing zero bits of a 32-bit mask (32 for 0), QEMU's ctz32. */
export function ctz32(mask: number): number {
  return mask === 0 ? 32 : 31 - Math.clz32(mask & -mask);
}
