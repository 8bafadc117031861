// Guest views of a state: bytes, per-cluster kinds, and qemu-img map ranges.
// An unallocated cluster, or an unallocated subcluster of an extended-L2
// image, reads through to the backing chain (docs/semantics.md, Backing
// chains): zeros at and past a backing layer's end, zeros below the last layer.
import { backingSize, clustersFor, entryAt, geometry, kindOf, subclusterState, type BackingLayer, type ClusterKind, type ModelState } from './state.js';

function checkRange(state: ModelState, offset: number, length: number): void {
  const size = state.options.virtualSize;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`read ${offset}+${length} outside the virtual disk (size ${size})`);
  }
}

/**
 * What the chain answers for one guest range: the bytes come from a data
 * cluster (or a raw layer) at `depth`, read as zeros because of a zero cluster
 * at `depth`, or nothing is allocated (the walk stopped at `depth`: the last
 * layer, or the layer whose backing ends before the range). Depth 0 is the
 * image itself, as in qemu-img map.
 */
export interface ChainPiece {
  readonly start: number;
  readonly end: number;
  readonly kind: 'data' | 'zero' | 'unallocated';
  readonly depth: number;
  /** The bytes of [start, end) when kind is data. */
  readonly bytes?: Uint8Array;
}

/**
 * The pieces of [start, end) of a qcow2 layer at `depth`, in order, subcluster
 * by subcluster (a standard image's cluster is one subcluster): allocated is
 * data, zero is zero, unallocated reads through (bdrv_co_common_block_status_above,
 * qcow2_co_block_status).
 */
function qcow2Pieces(state: ModelState, start: number, end: number, depth: number, out: ChainPiece[]): void {
  const g = geometry(state.options);
  for (let pos = start; pos < end; ) {
    const guestCluster = Math.floor(pos / g.clusterSize);
    const clusterStart = guestCluster * g.clusterSize;
    const index = Math.floor((pos - clusterStart) / g.subclusterSize);
    const pieceEnd = Math.min(end, clusterStart + (index + 1) * g.subclusterSize);
    const entry = entryAt(state.active, g, guestCluster);
    const sub = subclusterState(entry, index);
    if (sub === 'allocated' && (entry?.kind === 'normal' || entry?.kind === 'compressed')) {
      out.push({ start: pos, end: pieceEnd, kind: 'data', depth, bytes: entry.data.bytes.subarray(pos - clusterStart, pieceEnd - clusterStart) });
    } else if (sub === 'zero') {
      out.push({ start: pos, end: pieceEnd, kind: 'zero', depth });
    } else {
      backingPieces(state.backing, pos, pieceEnd, depth, out);
    }
    pos = pieceEnd;
  }
}

/** The pieces of [start, end) that a layer at `depth` reads from its backing layer (at depth + 1). */
function backingPieces(layer: BackingLayer | undefined, start: number, end: number, depth: number, out: ChainPiece[]): void {
  if (layer === undefined) {
    out.push({ start, end, kind: 'unallocated', depth });
    return;
  }
  const inside = Math.min(end, Math.max(start, backingSize(layer)));
  if (start < inside) {
    if (layer.format === 'raw') out.push({ start, end: inside, kind: 'data', depth: depth + 1, bytes: layer.bytes.subarray(start, inside) });
    else qcow2Pieces(layer.image, start, inside, depth + 1, out);
  }
  if (inside < end) out.push({ start: inside, end, kind: 'unallocated', depth });
}

/** The chain's answer for [offset, offset + length) of the active view, in order. */
export function chainPieces(state: ModelState, offset: number, length: number): ChainPiece[] {
  checkRange(state, offset, length);
  const out: ChainPiece[] = [];
  qcow2Pieces(state, offset, offset + length, 0, out);
  return out;
}

/** Guest bytes [start, end) of a backing layer as the overlay reads them (zeros past its end). */
export function readBacking(layer: BackingLayer | undefined, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  const pieces: ChainPiece[] = [];
  backingPieces(layer, start, end, 0, pieces);
  for (const p of pieces) if (p.bytes !== undefined) out.set(p.bytes, p.start - start);
  return out;
}

/** Guest bytes of the active view: data (sub)clusters give their bytes, zero ones zeros, unallocated ones the backing chain's bytes. */
export function read(state: ModelState, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (const p of chainPieces(state, offset, length)) if (p.bytes !== undefined) out.set(p.bytes, p.start - offset);
  return out;
}

/**
 * QEMU's `is_zero` (qcow2.c, through bdrv_block_status_above): every byte of
 * [offset, offset + length), clamped to the virtual size, is a zero cluster or
 * unallocated down the whole chain or past a backing layer's end. A data
 * cluster or a raw layer is never zero here, whatever its bytes.
 */
export function readsAsZero(state: ModelState, offset: number, length: number): boolean {
  const end = Math.min(offset + length, state.options.virtualSize);
  if (end <= offset) return true;
  return chainPieces(state, offset, end - offset).every((p) => p.kind !== 'data');
}

/** Kind of a guest cluster in the active view of this layer (the chain below is not looked at). */
export function guestClusterKind(state: ModelState, guestCluster: number): ClusterKind {
  const g = geometry(state.options);
  if (!Number.isSafeInteger(guestCluster) || guestCluster < 0 || guestCluster >= clustersFor(state.options.virtualSize, g.clusterSize)) {
    throw new RangeError(`guest cluster ${guestCluster} outside the virtual disk`);
  }
  return kindOf(entryAt(state.active, g, guestCluster));
}

export interface ModelMapRange {
  readonly start: number;
  readonly length: number;
  readonly kind: 'data' | 'zero' | 'unallocated';
  /** The chain layer that answers (0 = the image; always 0 without a backing file), as qemu-img map's `depth`. */
  readonly depth: number;
}

/**
 * Active view through the chain as merged ranges, clipped to the virtual size,
 * subcluster by subcluster: allocated is data, zero is zero (a zero-plain or
 * zero-alloc cluster, or a zero subcluster), unallocated reads through to the
 * backing chain (also in a host cluster: QEMU's UNALLOCATED_ALLOC subclusters).
 */
export function modelMap(state: ModelState): ModelMapRange[] {
  const ranges: ModelMapRange[] = [];
  for (const p of chainPieces(state, 0, state.options.virtualSize)) {
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.kind === p.kind && last.depth === p.depth) ranges[ranges.length - 1] = { ...last, length: last.length + p.end - p.start };
    else ranges.push({ start: p.start, length: p.end - p.start, kind: p.kind, depth: p.depth });
  }
  return ranges;
}
