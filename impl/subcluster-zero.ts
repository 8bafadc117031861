// Write-zeroes and discard on an image with extended L2 entries (QEMU 7.2
// qcow2_co_pwrite_zeroes, qcow2_subcluster_zeroize with zero_l2_subclusters and
// zero_in_l2_slice, discard_in_l2_slice). Zeroes go to the subcluster bitmap:
// whole clusters get every zero bit, a partial cluster the zero bits of the
// subclusters it covers. What cannot be zeroed so is written as zeros.
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assert } from './assert.js';
import { allZeroBitmap, emptyBitmap, markZero, subclusterKind, type SubclusterBitmap } from './format/l2-entry-extended.js';
import { backingReadsAsZeros, writeGuest } from './data-path.js';
import { eachCluster, type ClusterRule } from './each-cluster.js';

const sameBitmap = (a: SubclusterBitmap, b: SubclusterBitmap): boolean => a.alloc === b.alloc && a.zero === b.zero;

/** zero_in_l2_slice: every zero bit; the host cluster goes when unmapping or compressed. */
function zeroRuleExtended(unmap: boolean): ClusterRule {
  return (old, bitmap) => {
    const drop = old.kind === 'compressed' || (unmap && old.kind === 'normal');
    const entry: L2Entry = drop ? { kind: 'unallocated' } : old;
    if (entry === old && sameBitmap(bitmap, allZeroBitmap)) return undefined;
    return { entry, bitmap: allZeroBitmap };
  };
}

/**
 * discard_in_l2_slice: a cluster with a host cluster, and with a backing file
 * any cluster, becomes offset 0 with all zero subclusters (the backing no
 * longer shows through); a full discard (shrink, commit) empties the entry.
 */
function discardRuleExtended(full: boolean, hasBacking: boolean): ClusterRule {
  return (old, bitmap) => {
    if (full) return old.kind === 'unallocated' && sameBitmap(bitmap, emptyBitmap) ? undefined : { entry: { kind: 'unallocated' }, bitmap: emptyBitmap };
    // without a backing file an unallocated cluster already reads as zeros
    if (old.kind === 'unallocated' && (!hasBacking || sameBitmap(bitmap, allZeroBitmap))) return undefined;
    return { entry: { kind: 'unallocated' }, bitmap: allZeroBitmap };
  };
}

/** Discard whole guest clusters [first, end). */
export async function discardClustersExtended(s: ImageState, first: number, end: number, full: boolean): Promise<void> {
  await eachCluster(s, first, end, discardRuleExtended(full, s.backingName !== undefined));
}

/**
 * zero_l2_subclusters: subclusters [first, end) of one cluster become zero.
 * False when the cluster is compressed (QEMU's -ENOTSUP: the caller writes zeros).
 */
async function zeroSubclusters(s: ImageState, guestCluster: number, first: number, end: number): Promise<boolean> {
  assert(first < end && end - first < 32, 'a partial cluster: whole ones go through the whole-cluster rule');
  const n = s.g.l2EntriesCount;
  const table = await s.map.privatize(s.map.l1Index(guestCluster));
  const old = table.get(guestCluster % n);
  if (old.kind === 'compressed') return false;
  const bitmap = table.bitmap(guestCluster % n);
  const next = markZero(bitmap, first, end);
  if (!sameBitmap(bitmap, next)) await s.map.setEntry(guestCluster, old, next);
  return true;
}

/**
 * qcow2_subcluster_zeroize on [offset, end): subcluster-aligned, or ending at the
 * disk's end. A partial head and tail cluster get zero subclusters, whole
 * clusters the whole-cluster rule. A compressed head or tail cluster makes
 * QEMU fail the request after what it already did, and the block layer then
 * writes the whole range as zeros.
 */
async function zeroizeAligned(s: ImageState, offset: number, end: number, unmap: boolean): Promise<void> {
  const cs = s.g.clusterSize;
  const sc = s.g.subclusterSize;
  assert(offset % sc === 0 && (end % sc === 0 || end === s.header.size), 'zeroize takes subcluster-aligned ranges');
  const head = Math.min(end, Math.ceil(offset / cs) * cs) - offset;
  const wholeFrom = offset + head;
  const tail = end >= s.header.size ? 0 : end - Math.max(wholeFrom, Math.floor(end / cs) * cs);
  const wholeEnd = end - tail;
  assert(wholeFrom % cs === 0 || wholeFrom === wholeEnd, 'whole clusters start on a cluster boundary');
  let ok = true;
  if (head > 0) ok = await zeroSubclusters(s, Math.floor(offset / cs), (offset % cs) / sc, (offset % cs) / sc + Math.ceil(head / sc));
  if (ok && wholeEnd > wholeFrom) await eachCluster(s, wholeFrom / cs, Math.ceil(wholeEnd / cs), zeroRuleExtended(unmap));
  if (ok && tail > 0) ok = await zeroSubclusters(s, wholeEnd / cs, 0, Math.ceil(tail / sc));
  if (!ok) await writeGuest(s, offset, new Uint8Array(end - offset));
}

/**
 * Guest write-zeroes: the block layer splits off a head and a tail that are not
 * subcluster-aligned. Such a piece zeroizes its whole subcluster when the rest
 * of it already reads as zeros (a zero subcluster, or an unallocated one whose
 * backing chain reports zeros there), else it is
 * written as zeros; the aligned middle is zeroized.
 */
export async function writeZeroesExtended(s: ImageState, offset: number, length: number, unmap: boolean): Promise<void> {
  const sc = s.g.subclusterSize;
  const end = offset + length;
  const alignedFrom = Math.min(end, Math.ceil(offset / sc) * sc);
  // the block layer splits at subcluster alignment even at the disk's end (bdrv_co_do_pwrite_zeroes);
  // a tail piece that ends there is then zeroized alone (qcow2_co_pwrite_zeroes drops its tail)
  const alignedTo = Math.max(alignedFrom, Math.floor(end / sc) * sc);
  const pieces: [number, number][] = [];
  if (alignedFrom > offset) pieces.push([offset, alignedFrom]);
  if (alignedTo > alignedFrom) pieces.push([alignedFrom, alignedTo]);
  if (end > alignedTo) pieces.push([alignedTo, end]);
  for (const [from, to] of pieces) {
    const aligned = from % sc === 0 && (to % sc === 0 || to === s.header.size);
    if (aligned) {
      await zeroizeAligned(s, from, to, unmap);
      continue;
    }
    const start = Math.floor(from / sc) * sc;
    const end = Math.min(start + sc, s.header.size);
    const cluster = Math.floor(start / s.g.clusterSize);
    const kind = subclusterKind((await s.map.entry(cluster)).kind, await s.map.bitmap(cluster), (start % s.g.clusterSize) / sc);
    // An unallocated subcluster reads the backing chain: its rest must be zeros there too (is_zero).
    const restIsZero = kind === 'zero' || (kind === 'unallocated' && (await backingReadsAsZeros(s, start, from)) && (await backingReadsAsZeros(s, to, end)));
    if (restIsZero) await zeroizeAligned(s, start, end, unmap);
    else await writeGuest(s, from, new Uint8Array(to - from));
  }
}
