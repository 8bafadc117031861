// Reading compressed clusters (raw deflate, digest §4.3) and the host clusters a
// compressed stream touches (each one holds a reference).
import { inflateRawSync, constants } from 'node:zlib';
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import type { CompressedDescriptor } from './format/compressed-descriptor.js';
import { Qcow2Error } from './errors.js';

export function compressedClusters(d: CompressedDescriptor, g: Geometry): number[] {
  const first = Math.floor(d.offset / g.clusterSize);
  const last = Math.floor((d.offset + d.length - 1) / g.clusterSize);
  const out: number[] = [];
  for (let c = first; c <= last; c++) out.push(c);
  return out;
}

/** Inflate one cluster; the stream may end early or be followed by other data. */
export async function readCompressedCluster(file: BlockFile, d: CompressedDescriptor, g: Geometry): Promise<Uint8Array> {
  const input = await file.pread(d.offset, d.length);
  let output: Buffer;
  try {
    output = inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: g.clusterSize });
  } catch (cause) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (output.length !== g.clusterSize) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset} inflates to ${output.length} bytes, expected ${g.clusterSize}`);
  }
  return new Uint8Array(output.buffer, output.byteOffset, output.length);
}
