// Guest views of a state: bytes, per-cluster kinds, and qemu-img map ranges.
import { clustersFor, entryAt, geometry, kindOf, type ClusterKind, type ModelState } from './state.js';

function checkRange(state: ModelState, offset: number, length: number): void {
  const size = state.options.virtualSize;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`read ${offset}+${length} outside the virtual disk (size ${size})`);
  }
}

/** Guest bytes of the active view: normal and compressed clusters give their data, every other kind zeros. */
export function read(state: ModelState, offset: number, length: number): Uint8Array {
  checkRange(state, offset, length);
  const g = geometry(state.options);
  const out = new Uint8Array(length);
  for (let pos = offset; pos < offset + length; ) {
    const guestCluster = Math.floor(pos / g.clusterSize);
    const clusterStart = guestCluster * g.clusterSize;
    const pieceEnd = Math.min(offset + length, clusterStart + g.clusterSize);
    const entry = entryAt(state.active, g, guestCluster);
    if (entry?.kind === 'normal' || entry?.kind === 'compressed') out.set(entry.data.bytes.subarray(pos - clusterStart, pieceEnd - clusterStart), pos - offset);
    pos = pieceEnd;
  }
  return out;
}

/** Kind of a guest cluster in the active view. */
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
}

/** Active view as merged ranges (zero = zero-plain or zero-alloc), clipped to the virtual size. */
export function modelMap(state: ModelState): ModelMapRange[] {
  const g = geometry(state.options);
  const size = state.options.virtualSize;
  const ranges: ModelMapRange[] = [];
  for (let c = 0; c < clustersFor(size, g.clusterSize); c++) {
    const kind = mapKind(kindOf(entryAt(state.active, g, c)));
    const start = c * g.clusterSize;
    const length = Math.min(g.clusterSize, size - start);
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last.kind === kind) ranges[ranges.length - 1] = { ...last, length: last.length + length };
    else ranges.push({ start, length, kind });
  }
  return ranges;
}

function mapKind(kind: ClusterKind): ModelMapRange['kind'] {
  switch (kind) {
    case 'normal':
    case 'compressed':
      return 'data';
    case 'zero-plain':
    case 'zero-alloc':
      return 'zero';
    case 'unallocated':
      return 'unallocated';
    default: {
      const never: never = kind;
      throw new Error(`unknown kind ${String(never)}`);
    }
  }
}
