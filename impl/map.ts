// qemu-img map --output=json for an image without backing file: one entry per run
// of guest clusters with the same flags and contiguous host offsets.
import type { ImageState } from './state.js';
import { assertNever } from './assert.js';

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
  for (let start = 0; start < size; start += cs) {
    const length = Math.min(cs, size - start);
    const e = await s.map.entry(start / cs);
    let next: MapEntry;
    switch (e.kind) {
      case 'unallocated':
        next = { start, length, depth: 0, present: false, zero: true, data: false };
        break;
      case 'zero-plain':
        next = { start, length, depth: 0, present: true, zero: true, data: false };
        break;
      case 'zero-alloc':
        next = { start, length, depth: 0, present: true, zero: true, data: false, offset: e.offset };
        break;
      case 'normal': {
        // The engine does not write the unwritten tail of a new last cluster, so the
        // file may end inside it; QEMU's file layer reports the part past the end
        // as data that reads as zeros (qemu-img map: "zero": true, "data": true).
        const inFile = Math.max(0, Math.min(length, fileLength - e.offset));
        if (inFile < length) {
          if (inFile > 0) push({ start, length: inFile, depth: 0, present: true, zero: false, data: true, offset: e.offset });
          push({ start: start + inFile, length: length - inFile, depth: 0, present: true, zero: true, data: true, offset: e.offset + inFile });
          continue;
        }
        next = { start, length, depth: 0, present: true, zero: false, data: true, offset: e.offset };
        break;
      }
      case 'compressed':
        next = { start, length, depth: 0, present: true, zero: false, data: true };
        break;
      default:
        return assertNever(e, 'L2 entry');
    }
    push(next);
  }
  return out;
}

function mergeable(a: MapEntry, b: MapEntry): boolean {
  if (a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.depth !== b.depth) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}
