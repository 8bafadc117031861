// qemu-img map --output=json: one entry per run of guest clusters (with extended
// L2, subclusters) with the same flags, depth and contiguous host offsets.
// Unallocated clusters of an overlay take the status of its backing chain, one
// deeper (qemu-img's depth).
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assert, assertNever } from './assert.js';
import type { SubclusterBitmap } from './format/l2-entry-extended.js';
import { subclusterRun } from './subcluster-write.js';

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
      await mapSubclusters(s, e, await s.map.bitmap(cluster), start, length, push, pushData);
      continue;
    }
    switch (e.kind) {
      case 'unallocated':
        await mapBelow(s, start, length, {}, push);
        break;
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
 * Guest bytes [start, start + length) that this image leaves unallocated: the
 * backing chain's status one deeper where it has bytes; past its end (or with
 * none) absent and zero at depth 0, with `offset` when a host cluster holds
 * them (an unallocated subcluster: QCOW2_SUBCLUSTER_UNALLOCATED_ALLOC).
 */
async function mapBelow(s: ImageState, start: number, length: number, offset: { offset?: number }, push: (next: MapEntry) => void): Promise<void> {
  const backingEnd = Math.min(start + length, s.backing?.size ?? 0);
  if (s.backing !== undefined && backingEnd > start) {
    for (const below of await s.backing.map(start, backingEnd - start)) push({ ...below, depth: below.depth + 1 });
  }
  const from = Math.max(start, backingEnd);
  if (from < start + length) {
    const at = offset.offset === undefined ? {} : { offset: offset.offset + from - start };
    push({ start: from, length: start + length - from, depth: 0, present: false, zero: true, data: false, ...at });
  }
}

/**
 * Guest bytes [start, start + length) of one cluster of an extended-L2 image,
 * subcluster by subcluster, with the flags qcow2_co_block_status gives each
 * type: a zero subcluster is present and zero (with the host offset when the
 * cluster has one), an unallocated one reads through (mapBelow).
 */
async function mapSubclusters(
  s: ImageState,
  e: L2Entry,
  bitmap: SubclusterBitmap,
  start: number,
  length: number,
  push: (next: MapEntry) => void,
  pushData: (start: number, length: number, host: number) => void,
): Promise<void> {
  assert(e.kind === 'normal' || e.kind === 'unallocated', 'only normal and unallocated clusters have subclusters');
  const cs = s.g.clusterSize;
  const clusterStart = Math.floor(start / cs) * cs;
  assert(start + length <= clusterStart + cs, 'the range lies inside one cluster');
  for (let at = start; at < start + length; ) {
    const run = subclusterRun(s, e.kind, bitmap, at - clusterStart, start + length - at);
    const host = e.kind === 'normal' ? e.offset + at - clusterStart : undefined;
    const offset = host === undefined ? {} : { offset: host };
    switch (run.kind) {
      case 'data':
        assert(host !== undefined, 'data subclusters have a host cluster');
        pushData(at, run.length, host);
        break;
      case 'zero':
        push({ start: at, length: run.length, depth: 0, present: true, zero: true, data: false, ...offset });
        break;
      case 'unallocated':
        await mapBelow(s, at, run.length, offset, push);
        break;
      default:
        return assertNever(run.kind, 'subcluster kind');
    }
    at += run.length;
  }
}

function mergeable(a: MapEntry, b: MapEntry): boolean {
  if (a.filename !== b.filename) return false;
  if (a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.depth !== b.depth) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}
