// qemu-img map --output=json for an image without backing file: one entry per run
// of guest clusters (with extended L2, subclusters) with the same flags and
// contiguous host offsets.
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assertNever } from './assert.js';
import { subclusterKind, type SubclusterBitmap } from './format/l2-entry-extended.js';
import { subclustersPerCluster } from './limits.js';

export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
}

export async function mapImage(s: ImageState): Promise<MapEntry[]> {
  const cs = s.g.clusterSize;
  const size = s.header.size;
  const out: MapEntry[] = [];
  const fileLength = await s.file.length();
  const push = (next: MapEntry) => {
    const last = out[out.length - 1];
    if (last && mergeable(last, next)) last.length += next.length;
    else out.push(next);
  };
  // The engine does not write the unwritten tail of a new last cluster, so the
  // file may end inside it; QEMU's file layer reports the part past the end
  // as data that reads as zeros (qemu-img map: "zero": true, "data": true).
  const pushData = (start: number, length: number, host: number) => {
    const inFile = Math.max(0, Math.min(length, fileLength - host));
    if (inFile > 0) push({ start, length: inFile, depth: 0, present: true, zero: false, data: true, offset: host });
    if (inFile < length) push({ start: start + inFile, length: length - inFile, depth: 0, present: true, zero: true, data: true, offset: host + inFile });
  };
  for (let start = 0; start < size; start += cs) {
    const length = Math.min(cs, size - start);
    const e = await s.map.entry(start / cs);
    if (s.g.extendedL2 && e.kind !== 'compressed') {
      mapSubclusters(s, e, await s.map.bitmap(start / cs), start, length, push, pushData);
      continue;
    }
    switch (e.kind) {
      case 'unallocated':
        push({ start, length, depth: 0, present: false, zero: true, data: false });
        break;
      case 'zero-plain':
        push({ start, length, depth: 0, present: true, zero: true, data: false });
        break;
      case 'zero-alloc':
        push({ start, length, depth: 0, present: true, zero: true, data: false, offset: e.offset });
        break;
      case 'normal':
        pushData(start, length, e.offset);
        break;
      case 'compressed':
        push({ start, length, depth: 0, present: true, zero: false, data: true });
        break;
      default:
        return assertNever(e, 'L2 entry');
    }
  }
  return out;
}

/**
 * One cluster of an extended-L2 image, subcluster by subcluster, with the flags
 * qcow2_co_block_status gives each type: a zero subcluster is present and zero,
 * an unallocated one is absent and zero, with its host offset when the cluster
 * has one (QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC).
 */
function mapSubclusters(
  s: ImageState,
  e: L2Entry,
  bitmap: SubclusterBitmap,
  start: number,
  length: number,
  push: (next: MapEntry) => void,
  pushData: (start: number, length: number, host: number) => void,
): void {
  const sc = s.g.subclusterSize;
  const host = e.kind === 'normal' ? e.offset : undefined;
  for (let i = 0; i < subclustersPerCluster && i * sc < length; i++) {
    const at = start + i * sc;
    const n = Math.min(sc, length - i * sc);
    const offset = host === undefined ? {} : { offset: host + i * sc };
    const kind = subclusterKind(e.kind, bitmap, i);
    switch (kind) {
      case 'data':
        pushData(at, n, (host ?? 0) + i * sc);
        break;
      case 'zero':
        push({ start: at, length: n, depth: 0, present: true, zero: true, data: false, ...offset });
        break;
      case 'unallocated':
        push({ start: at, length: n, depth: 0, present: false, zero: true, data: false, ...offset });
        break;
      case 'compressed':
        push({ start: at, length: n, depth: 0, present: true, zero: false, data: true });
        break;
      default:
        return assertNever(kind, 'subcluster kind');
    }
  }
}

function mergeable(a: MapEntry, b: MapEntry): boolean {
  if (a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.depth !== b.depth) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}
