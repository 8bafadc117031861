// Guest views of a state: bytes, per-cluster kinds, and qemu-img map ranges.
import { clustersFor, entryAt, geometry, kindOf, subclusterState, type ClusterKind, type ModelState } from './state.js';
import type { SubclusterState } from './subclusters.js';

function checkRange(state: ModelState, offset: number, length: number): void {
  const size = state.options.virtualSize;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`read ${offset}+${length} outside the virtual disk (size ${size})`);
  }
}

/**
 * Guest bytes of the active view: allocated subclusters of normal clusters and
 * compressed clusters give their data, everything else zeros (no backing file).
 * Without extended L2 entries a cluster is one subcluster.
 */
export function read(state: ModelState, offset: number, length: number): Uint8Array {
  checkRange(state, offset, length);
  const g = geometry(state.options);
  const out = new Uint8Array(length);
  for (let pos = offset; pos < offset + length; ) {
    const guestCluster = Math.floor(pos / g.clusterSize);
    const clusterStart = guestCluster * g.clusterSize;
    const index = Math.floor((pos - clusterStart) / g.subclusterSize);
    const pieceEnd = Math.min(offset + length, clusterStart + (index + 1) * g.subclusterSize);
    const entry = entryAt(state.active, g, guestCluster);
    if ((entry?.kind === 'normal' || entry?.kind === 'compressed') && subclusterState(entry, index) === 'allocated') {
      out.set(entry.data.bytes.subarray(pos - clusterStart, pieceEnd - clusterStart), pos - offset);
    }
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

/**
 * Active view as merged ranges, clipped to the virtual size, subcluster by
 * subcluster (qcow2_co_block_status): allocated is data, zero is zero (a
 * zero-plain or zero-alloc cluster in a standard image), unallocated is
 * unallocated, also in a host cluster (QEMU's UNALLOCATED_ALLOC subclusters).
 */
export function modelMap(state: ModelState): ModelMapRange[] {
  const g = geometry(state.options);
  const size = state.options.virtualSize;
  const ranges: ModelMapRange[] = [];
  for (let c = 0; c < clustersFor(size, g.clusterSize); c++) {
    const entry = entryAt(state.active, g, c);
    for (let start = c * g.clusterSize, i = 0; start < Math.min(size, (c + 1) * g.clusterSize); start += g.subclusterSize, i++) {
      const kind = mapKinds[subclusterState(entry, i)];
      const length = Math.min(g.subclusterSize, size - start);
      const last = ranges[ranges.length - 1];
      if (last !== undefined && last.kind === kind) ranges[ranges.length - 1] = { ...last, length: last.length + length };
      else ranges.push({ start, length, kind });
    }
  }
  return ranges;
}

const mapKinds: Readonly<Record<SubclusterState, ModelMapRange['kind']>> = { allocated: 'data', zero: 'zero', unallocated: 'unallocated' };
