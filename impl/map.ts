// qemu-img map --output=json: one entry per run of guest clusters (with extended
// L2, subclusters) with the same flags, depth and contiguous host offsets.
// Unallocated clusters of an overlay take the status of its backing chain, one
// deeper (qemu-img's depth).
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assert, assertNever } from './assert.js';
import { subclusterKind, type SubclusterBitmap } from './format/l2-entry-extended.js';
import { subclustersPerCluster } from './limits.js';

export interface MapEntry {
  start: number;
  length: number;
  /** 0: this image; n: the n-th backing file below it. */
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
  /** The backing file `offset` points into (depth > 0 only): qemu-img map's File column. */
  filename?: string;
}

/** Map guest bytes [from, to) (default: the whole disk); a backing layer is asked for any range. */
export async function mapImage(s: ImageState, from = 0, to = s.header.size): Promise<MapEntry[]> {
  const cs = s.g.clusterSize;
  assert(from >= 0 && from <= to && to <= s.header.size, 'map range inside the disk');
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
  for (let cluster = Math.floor(from / cs); cluster * cs < to; cluster++) {
    const start = Math.max(from, cluster * cs);
    const length = Math.min(to, (cluster + 1) * cs) - start;
    const inCluster = start - cluster * cs;
    const e = await s.map.entry(cluster);
    if (s.g.extendedL2 && e.kind !== 'compressed') {
      // Backing files are refused on extended-L2 images (open.ts): whole clusters only.
      assert(inCluster === 0 && s.backing === undefined, 'extended-L2 images are mapped cluster by cluster, alone');
      mapSubclusters(s, e, await s.map.bitmap(cluster), start, length, push, pushData);
      continue;
    }
    switch (e.kind) {
      case 'unallocated': {
        const backingEnd = Math.min(start + length, s.backing?.size ?? 0);
        if (s.backing !== undefined && backingEnd > start) {
          for (const below of await s.backing.map(start, backingEnd - start)) push({ ...below, depth: below.depth + 1 });
          if (backingEnd < start + length) push({ start: backingEnd, length: start + length - backingEnd, depth: 0, present: false, zero: true, data: false });
          break;
        }
        push({ start, length, depth: 0, present: false, zero: true, data: false });
        break;
      }
      case 'zero-plain':
        push({ start, length, depth: 0, present: true, zero: true, data: false });
        break;
      case 'zero-alloc':
        push({ start, length, depth: 0, present: true, zero: true, data: false, offset: e.offset + inCluster });
        break;
      case 'normal':
        pushData(start, length, e.offset + inCluster);
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
  if (a.filename !== b.filename) return false;
  if (a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.depth !== b.depth) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}
