// Host writes of guest data: contiguous runs gathered into one pwrite each, and
// the metadata overlap check every data write passes first.
import type { ImageState } from './state.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { allocUninitialized } from './io/block-file.js';

export interface Run {
  host: number;
  length: number;
  parts: Uint8Array[];
}

/**
 * Append a host write, merging it into the previous one when contiguous. A piece
 * that directly follows the previous one in the same buffer (whole clusters of
 * one guest write) widens that view instead, so the run needs no copy.
 */
export function pushRun(runs: Run[], host: number, bytes: Uint8Array): void {
  const last = runs[runs.length - 1];
  if (last && last.host + last.length === host) {
    const prev = last.parts[last.parts.length - 1];
    if (prev && prev.buffer === bytes.buffer && prev.byteOffset + prev.length === bytes.byteOffset) {
      last.parts[last.parts.length - 1] = new Uint8Array(prev.buffer, prev.byteOffset, prev.length + bytes.length);
    } else {
      last.parts.push(bytes);
    }
    last.length += bytes.length;
  } else {
    runs.push({ host, length: bytes.length, parts: [bytes] });
  }
}

export function runBytes(run: Run): Uint8Array {
  if (run.parts.length === 1 && run.parts[0]) return run.parts[0];
  const out = allocUninitialized(run.length);
  let at = 0;
  for (const part of run.parts) {
    out.set(part, at);
    at += part.length;
  }
  assert(at === run.length, 'a run is exactly its parts');
  return out;
}

/**
 * QEMU's metadata overlap check (the "constant" template plus refcount blocks):
 * guest data never goes over the header, the active L1, the refcount table or
 * blocks, or the snapshot table. Only a damaged image gets here: refuse the write.
 * Errors: Qcow2Error 'corrupt' naming the region.
 */
export function checkOverlap(s: ImageState, host: number, length: number): void {
  const cs = s.g.clusterSize;
  const overlaps = (start: number, bytes: number) => bytes > 0 && host < start + bytes && host + length > start;
  const region = overlaps(0, cs) ? 'header'
    : overlaps(s.map.l1Offset, s.map.l1.size * 8) ? 'active L1 table'
    : overlaps(s.header.snapshotsOffset, s.snapshotTableBytes) ? 'snapshot table'
    : s.refcounts.overlapsMetadata(host, length) ? 'refcount structures'
    : undefined;
  if (region !== undefined) throw new Qcow2Error('corrupt', `refusing a data write of ${length} bytes at ${host}: it overlaps the ${region}`);
}
