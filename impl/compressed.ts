// Compressed clusters' codec (digest §4.3): raw deflate as QEMU's qcow2_compress
// and qcow2_decompress use it, and the host clusters a compressed stream touches
// (each one holds a reference per stream).
import { constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import { compressedSectorBytes, type CompressedDescriptor } from './format/compressed-descriptor.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';

/** QEMU's deflateInit2 window: 2^12 bytes, raw deflate (negative windowBits). */
export const deflateWindowBits = 12;
/** QEMU's deflateInit2 memLevel. */
export const deflateMemLevel = 9;

export function compressedClusters(d: CompressedDescriptor, g: Geometry): number[] {
  const first = Math.floor(d.offset / g.clusterSize);
  const last = Math.floor((d.offset + d.length - 1) / g.clusterSize);
  const out: number[] = [];
  for (let c = first; c <= last; c++) out.push(c);
  return out;
}

/**
 * Compress one whole guest cluster (qcow2_compress with Z_DEFAULT_COMPRESSION).
 * Returns undefined when the stream would not be shorter than the cluster: QEMU
 * then writes the cluster uncompressed (its output buffer holds cluster_size - 1).
 */
export function compressCluster(cluster: Uint8Array, g: Geometry): Uint8Array | undefined {
  assert(cluster.length === g.clusterSize, 'a compressed write covers one whole cluster');
  const out = deflateRawSync(cluster, { windowBits: deflateWindowBits, memLevel: deflateMemLevel, level: constants.Z_DEFAULT_COMPRESSION });
  assert(out.length > 0, 'a deflate stream has at least one byte');
  return out.length <= g.clusterSize - 1 ? new Uint8Array(out.buffer, out.byteOffset, out.length) : undefined;
}

/**
 * Inflate one cluster. The stream may end early or be followed by other data;
 * its sectors may reach into the last, partial sector of the file (QEMU writes
 * the last stream unpadded), never further. The output is bounded by the cluster
 * size whatever the stream says (no decompression bomb). Errors: Qcow2Error
 * 'corrupt' for sectors past the file, a stream that does not inflate, or one
 * that inflates to anything but exactly one cluster.
 */
export async function readCompressedCluster(file: BlockFile, d: CompressedDescriptor, g: Geometry): Promise<Uint8Array> {
  const fileLength = await file.length();
  const sectorsEnd = Math.ceil(fileLength / compressedSectorBytes) * compressedSectorBytes;
  if (d.offset + d.length > sectorsEnd) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset}: its ${d.length} bytes of sectors run past the end of the file (${fileLength} bytes)`);
  }
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
