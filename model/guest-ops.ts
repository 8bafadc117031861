// Guest-visible operations: write, writeZeroes, discard, resize
// (docs/semantics.md, one function per section).
import { ActiveDraft } from './active-draft.js';
import { readsAsZero } from './read.js';
import { backingSize, entryAt, geometry, subclusterState, type ModelState } from './state.js';
import { compressedWriteBytes, writeBytes, type DiscardOp, type Outcome, type ResizeOp, type WriteCompressedOp, type WriteOp, type WriteZeroesOp } from './ops.js';

export type StepResult = { readonly state: ModelState; readonly outcome: Outcome };

export const ok: Outcome = { ok: true };

export function refuse(state: ModelState, error: Exclude<Outcome, { ok: true }>['error'], message: string): StepResult {
  return { state, outcome: { ok: false, error, message } };
}

/**
 * qemu-io refuses a request past the end with EIO; a malformed one never
 * reaches the image. A zero-length request inside the disk succeeds and
 * changes nothing (qemu-io 7.2: "wrote 0/0 bytes").
 */
function refusedOrEmpty(state: ModelState, offset: number, length: number): StepResult | undefined {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    return refuse(state, 'invalid-argument', `bad range offset=${offset} length=${length}`);
  }
  if (offset + length > state.options.virtualSize) {
    return refuse(state, 'out-of-range', `range ${offset}+${length} past virtual size ${state.options.virtualSize}`);
  }
  if (length === 0) return { state, outcome: ok };
  return undefined;
}

/** Splits [offset, offset+length) at cluster boundaries. */
function* pieces(offset: number, length: number, clusterSize: number) {
  const end = offset + length;
  for (let start = offset; start < end; ) {
    const guestCluster = Math.floor(start / clusterSize);
    const pieceEnd = Math.min(end, (guestCluster + 1) * clusterSize);
    yield { guestCluster, start, end: pieceEnd, inCluster: start - guestCluster * clusterSize };
    start = pieceEnd;
  }
}

function writeRange(draft: ActiveDraft, offset: number, bytes: Uint8Array): void {
  for (const p of pieces(offset, bytes.length, draft.g.clusterSize)) {
    draft.write(p.guestCluster, p.inCluster, bytes.subarray(p.start - offset, p.end - offset));
  }
}

/** The write rule for `bytes` at `offset` (inside the disk), for ops that copy guest bytes (rebase, commit). */
export function writeData(state: ModelState, offset: number, bytes: Uint8Array): ModelState {
  const draft = new ActiveDraft(state);
  writeRange(draft, offset, bytes);
  return draft.finish();
}

export function write(state: ModelState, op: WriteOp): StepResult {
  const bad = refusedOrEmpty(state, op.offset, op.length);
  if (bad) return bad;
  const draft = new ActiveDraft(state);
  writeRange(draft, op.offset, writeBytes(op));
  return { state: draft.finish(), outcome: ok };
}

/**
 * qcow2_co_pwritev_compressed: whole clusters only (the last may end at the
 * virtual size, its tail padded with zeros). Each cluster is its own request:
 * one that is unallocated or zero-plain becomes a compressed stream, one with a
 * host offset fails, and the others still complete (QEMU runs up to 8 per-cluster
 * tasks at once; the generator stays within that). qemu-io checks that offset
 * and length are whole sectors before anything else, even the virtual size.
 */
export function writeCompressed(state: ModelState, op: WriteCompressedOp): StepResult {
  if (op.offset % 512 !== 0 || op.length % 512 !== 0) {
    return refuse(state, 'invalid-argument', `compressed write ${op.offset}+${op.length} is not whole sectors`);
  }
  const bad = refusedOrEmpty(state, op.offset, op.length);
  if (bad) return bad;
  const { clusterSize } = geometry(state.options);
  const end = op.offset + op.length;
  if (op.offset % clusterSize !== 0 || (end % clusterSize !== 0 && end !== state.options.virtualSize)) {
    return refuse(state, 'invalid-argument', `compressed write ${op.offset}+${op.length} is not whole clusters`);
  }
  const draft = new ActiveDraft(state);
  const bytes = compressedWriteBytes(op);
  let refusedCluster: number | undefined;
  for (const p of pieces(op.offset, op.length, clusterSize)) {
    const content = new Uint8Array(clusterSize);
    content.set(bytes.subarray(p.start - op.offset, p.end - op.offset));
    if (!draft.compress(p.guestCluster, content)) refusedCluster ??= p.guestCluster;
  }
  const next = draft.finish();
  if (refusedCluster === undefined) return { state: next, outcome: ok };
  return { state: next, outcome: { ok: false, error: 'compressed-overwrite', message: `guest cluster ${refusedCluster} is allocated: compression can't overwrite it` } };
}

export function writeZeroes(state: ModelState, op: WriteZeroesOp): StepResult {
  const bad = refusedOrEmpty(state, op.offset, op.length);
  if (bad) return bad;
  const draft = new ActiveDraft(state);
  if (draft.extended) {
    writeZeroesSubclusters(state, draft, op.offset, op.length, op.unmap);
    return { state: draft.finish(), outcome: ok };
  }
  const { clusterSize } = draft.g;
  for (const p of pieces(op.offset, op.length, clusterSize)) {
    // A piece ending at the virtual size reaches the end of its cluster.
    const whole = p.inCluster === 0 && (p.end - p.start === clusterSize || p.end === state.options.virtualSize);
    const kind = draft.entry(p.guestCluster)?.kind;
    const clusterStart = p.guestCluster * clusterSize;
    // qcow2_co_pwrite_zeroes zeroizes a partial piece's whole cluster only when
    // the rest of it already reads as zeros (is_zero, through the backing chain).
    const restIsZero = () => readsAsZero(state, clusterStart, p.start - clusterStart) && readsAsZero(state, p.end, clusterStart + clusterSize - p.end);
    if (!whole && (kind === 'normal' || kind === 'compressed' || (kind === undefined && !restIsZero()))) {
      // qcow2_co_pwrite_zeroes returns -ENOTSUP; the block layer writes a zero buffer.
      draft.write(p.guestCluster, p.inCluster, new Uint8Array(p.end - p.start));
    } else if (state.options.version === 3) {
      draft.zeroize(p.guestCluster, op.unmap);
    } else if (state.backing !== undefined) {
      // v2 with a backing file: qcow2_subcluster_zeroize says -ENOTSUP, the block layer writes zeros
      draft.write(p.guestCluster, p.inCluster, new Uint8Array(p.end - p.start));
    } else {
      draft.discard(p.guestCluster); // v2 has no zero flag: without a backing file QEMU resorts to discard
    }
  }
  return { state: draft.finish(), outcome: ok };
}

/**
 * Write-zeroes on an extended-L2 image (docs/semantics.md, "Subclusters").
 * bdrv_co_do_pwrite_zeroes splits the request at subcluster boundaries
 * (qcow2's pwrite_zeroes_alignment) into a partial head, an aligned middle
 * and a partial tail; each fragment goes to qcow2_co_pwrite_zeroes, and one
 * it refuses (-ENOTSUP) is written as zero bytes instead.
 */
function writeZeroesSubclusters(state: ModelState, draft: ActiveDraft, offset: number, length: number, unmap: boolean): void {
  const sc = draft.g.subclusterSize;
  const { virtualSize } = state.options;
  for (const [start, end] of zeroFragments(offset, length, sc)) {
    const head = start % sc;
    // a fragment ending at the end of the disk reaches the end of its subcluster
    const tail = end === virtualSize ? 0 : Math.ceil(end / sc) * sc - end;
    let zeroized: boolean;
    if (head === 0 && tail === 0) {
      zeroized = zeroizeRange(draft, start, end, unmap, virtualSize);
    } else {
      // Part of one subcluster: the whole subcluster is zeroized when it is
      // unallocated or zero and the rest of it reads as zeros already
      // (is_zero, through the backing chain), else refused. The fragments are
      // disjoint subclusters, so the state before the request answers.
      const cluster = Math.floor(start / draft.g.clusterSize);
      const sub = subclusterState(draft.entry(cluster), Math.floor((start % draft.g.clusterSize) / sc));
      const compressed = draft.entry(cluster)?.kind === 'compressed';
      const restIsZero = readsAsZero(state, start - head, head) && readsAsZero(state, end, tail);
      zeroized = !compressed && sub !== 'allocated' && restIsZero && zeroizeRange(draft, start - head, start - head + sc, unmap, virtualSize);
    }
    if (!zeroized) writeRange(draft, start, new Uint8Array(end - start));
  }
}

/** The fragments bdrv_co_do_pwrite_zeroes makes of [offset, offset + length) for this alignment. */
function zeroFragments(offset: number, length: number, alignment: number): [number, number][] {
  const fragments: [number, number][] = [];
  let head = offset % alignment;
  const tail = (offset + length) % alignment;
  for (let at = offset, left = length; left > 0; ) {
    let num = left;
    if (head !== 0) {
      num = Math.min(left, alignment - head);
      head = (head + num) % alignment;
    } else if (tail !== 0 && num > alignment) {
      num -= tail;
    }
    fragments.push([at, at + num]);
    at += num;
    left -= num;
  }
  return fragments;
}

/**
 * qcow2_subcluster_zeroize on [start, end), subcluster aligned (`end` may lie
 * at or past the end of the disk, which then counts as the end of its
 * cluster): the subclusters of a partial first cluster, the whole clusters,
 * then the subclusters of a partial last cluster. False when a partial cluster
 * is compressed (-ENOTSUP); what was zeroized before it stays.
 */
function zeroizeRange(draft: ActiveDraft, start: number, end: number, unmap: boolean, virtualSize: number): boolean {
  const { clusterSize: cs, subclusterSize: sc } = draft.g;
  const head = Math.min(end, Math.ceil(start / cs) * cs) - start;
  const wholeStart = start + head;
  const tail = end >= virtualSize ? 0 : end - Math.max(wholeStart, Math.floor(end / cs) * cs);
  const wholeEnd = end - tail;
  if (head > 0) {
    const first = (start % cs) / sc;
    if (!draft.zeroSubclusters(Math.floor(start / cs), first, first + Math.ceil(head / sc))) return false;
  }
  const wholeCount = Math.ceil((wholeEnd - wholeStart) / cs);
  for (let i = 0; i < wholeCount; i++) draft.zeroize(wholeStart / cs + i, unmap);
  if (tail > 0 && !draft.zeroSubclusters(wholeEnd / cs, 0, Math.ceil(tail / sc))) return false;
  return true;
}

export function discard(state: ModelState, op: DiscardOp): StepResult {
  const bad = refusedOrEmpty(state, op.offset, op.length);
  if (bad) return bad;
  const { clusterSize } = geometry(state.options);
  const end = op.offset + op.length;
  const first = Math.ceil(op.offset / clusterSize);
  // The partial last cluster of an unaligned disk counts as whole when covered to the end.
  const last = end === state.options.virtualSize ? Math.ceil(end / clusterSize) : Math.floor(end / clusterSize);
  // Version 2 with a backing file: qemu-io 7.2 leaves every cluster as it was (measured).
  if (first >= last || (state.options.version === 2 && state.backing !== undefined)) return { state, outcome: ok };
  const draft = new ActiveDraft(state);
  for (let c = first; c < last; c++) draft.discard(c);
  return { state: draft.finish(), outcome: ok };
}

export function resize(state: ModelState, op: ResizeOp): StepResult {
  const { size } = op;
  if (!Number.isSafeInteger(size) || size < 0 || size % 512 !== 0) {
    return refuse(state, 'invalid-argument', `size ${size} is not a non-negative multiple of 512`);
  }
  if (state.options.version === 2 && state.snapshots.length > 0) {
    return refuse(state, 'unsupported', "Can't resize a v2 image which has snapshots");
  }
  if (state.options.version === 2 && growsOverBacking(state, size) && zerosClusters(state, size)) {
    return refuse(state, 'unsupported', 'Failed to zero out new clusters: Operation not supported (version 2 has no zero clusters)');
  }
  if (growsOverBacking(state, size) && compressedZeroHead(state)) {
    return refuse(state, 'unsupported', 'Failed to zero out new clusters: Operation not supported (the old last cluster is compressed)');
  }
  return { state: resizeUnchecked(state, size), outcome: ok };
}

/**
 * bdrv_co_truncate: growing an image whose backing file is longer than the old
 * size would let the backing's bytes appear in the new range, so QEMU zeroes
 * the new range (BDRV_REQ_ZERO_WRITE).
 */
function growsOverBacking(state: ModelState, size: number): boolean {
  return state.backing !== undefined && size > state.options.virtualSize && backingSize(state.backing) > state.options.virtualSize;
}

/**
 * Whether a growth over a backing file to `size` zeroizes (sub)clusters:
 * qcow2_co_truncate zeroizes from the next subcluster boundary only when the
 * new size lies past it; a growth inside the old last (sub)cluster only
 * writes explicit zeros, which version 2 can do too (measured: a compat=0.10
 * overlay of 0x7ffe00 bytes with 32 KiB clusters grows to 0x800000 over an
 * 8 MiB backing file, and refuses 0x7f0000 → 0x7f8000).
 */
function zerosClusters(state: ModelState, size: number): boolean {
  const { subclusterSize } = geometry(state.options);
  return Math.ceil(state.options.virtualSize / subclusterSize) * subclusterSize < size;
}

/**
 * With subclusters the zeros of a growth over a backing file start at the next
 * subcluster boundary (qcow2_co_truncate), so a disk that ended inside a
 * compressed cluster needs zero subclusters in it, which
 * qcow2_subcluster_zeroize refuses (-ENOTSUP): QEMU 7.2 fails the resize.
 */
function compressedZeroHead(state: ModelState): boolean {
  const g = geometry(state.options);
  const oldSize = state.options.virtualSize;
  if (state.options.extendedL2 !== true || oldSize % g.clusterSize === 0) return false;
  const zeroStart = Math.ceil(oldSize / g.subclusterSize) * g.subclusterSize;
  return zeroStart % g.clusterSize !== 0 && entryAt(state.active, g, Math.floor(oldSize / g.clusterSize))?.kind === 'compressed';
}

/**
 * The resize rules once the request is known to be valid. Revert resizes the
 * old active view to the snapshot's size first (qcow2_snapshot_goto: a plain
 * truncate) and then drops it, so it passes `zeroStaleTail` false: the zeros
 * over a stale tail would copy a shared cluster on write and change the
 * refcounts its overflow check sees, where QEMU's truncate writes nothing.
 */
export function resizeUnchecked(state: ModelState, size: number, zeroStaleTail = true): ModelState {
  const oldSize = state.options.virtualSize;
  const options = { ...state.options, virtualSize: size };
  const g = geometry(state.options);
  const draft = new ActiveDraft(state);
  if (growsOverBacking(state, size)) {
    // qcow2_co_truncate with BDRV_REQ_ZERO_WRITE (version 3): zero (sub)clusters
    // from the first subcluster boundary at or after the old size, explicit
    // zeros (the write rule, COW from the backing) for the unaligned head before it.
    const zeroStart = Math.min(size, Math.ceil(oldSize / g.subclusterSize) * g.subclusterSize);
    if (draft.extended && zeroStart < size) {
      // False only for a compressed head cluster: resize refuses that before,
      // and a revert drops the active view this zeroes right after.
      zeroizeRange(draft, zeroStart, size, false, size);
    } else {
      for (let c = Math.ceil(zeroStart / g.clusterSize); c < Math.ceil(size / g.clusterSize); c++) draft.zeroize(c, false);
    }
    if (zeroStart > oldSize) writeRange(draft, oldSize, new Uint8Array(zeroStart - oldSize));
    return draft.finish(options);
  }
  if (size >= oldSize) {
    // Deliberate fix of QEMU 7.2: stale bytes past the old end of the last
    // cluster must not resurface, so the bytes a host cluster backs there are
    // overwritten with zeros (a compressed cluster becomes normal by
    // copy-on-write). Only those can be stale: with subclusters, a zero or
    // unallocated tail subcluster reads zeros already and stays as it is; a
    // run that holds zeros (a compressed write of the partial last cluster
    // pads its stream with zeros) is stale in nothing and is left as QEMU
    // leaves it, with no copy-on-write.
    const lastCluster = Math.floor(oldSize / g.clusterSize);
    if (zeroStaleTail && oldSize % g.clusterSize !== 0 && size > oldSize) {
      const zeroEnd = Math.min(size, (lastCluster + 1) * g.clusterSize);
      for (const [from, to] of staleRanges(state, lastCluster, oldSize, zeroEnd)) writeRange(draft, from, new Uint8Array(to - from));
    }
    return draft.finish(options);
  }
  // Shrink: full discard of every cluster from roundUp(size, cs), then the L1
  // entries past the new need are dropped (l1_size itself never shrinks).
  const firstGone = Math.ceil(size / g.clusterSize);
  const l1Need = Math.ceil(size / g.l1Coverage);
  const oldClusters = Math.ceil(oldSize / g.clusterSize);
  for (let c = firstGone; c < oldClusters; c++) {
    if (Math.floor(c / g.l2EntriesCount) < l1Need) draft.unallocate(c);
  }
  draft.dropFrom(l1Need);
  return draft.finish(options);
}

/**
 * The runs of [from, to) (inside guest cluster `guestCluster`) whose bytes
 * come from a host cluster: subclusters that read as 'allocated' (the whole
 * cluster for a standard normal or a compressed entry), merged when adjacent;
 * only the runs that hold a byte other than zero.
 */
function staleRanges(state: ModelState, guestCluster: number, from: number, to: number): [number, number][] {
  const g = geometry(state.options);
  const entry = entryAt(state.active, g, guestCluster);
  const clusterStart = guestCluster * g.clusterSize;
  const ranges: [number, number][] = [];
  for (let at = from; at < to; ) {
    const index = Math.floor((at - clusterStart) / g.subclusterSize);
    const end = Math.min(to, clusterStart + (index + 1) * g.subclusterSize);
    const last = ranges[ranges.length - 1];
    if (subclusterState(entry, index) === 'allocated') {
      if (last !== undefined && last[1] === at) last[1] = end;
      else ranges.push([at, end]);
    }
    at = end;
  }
  const bytes = entry !== undefined && 'data' in entry ? entry.data.bytes : new Uint8Array(g.clusterSize);
  return ranges.filter(([a, b]) => bytes.subarray(a - clusterStart, b - clusterStart).some((byte) => byte !== 0));
}
