// Compressed clusters' codecs (digest §4.3): raw deflate as QEMU's qcow2_compress
// and qcow2_decompress use it (compression type 0), zstd as qcow2_zstd_compress
// and qcow2_zstd_decompress do (type 1: one frame per cluster, default level 3),
// and the host clusters a compressed stream touches (each one holds a reference
// per stream).
import { promisify } from 'node:util';
import { constants, deflateRaw, inflateRawSync } from 'node:zlib';
import { compress as zstdCompress, decompress as zstdDecompress, init as zstdInit } from '@bokuweb/zstd-wasm';
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import { compressedSectorBytes, type CompressedDescriptor } from './format/compressed-descriptor.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { compressionTypeZlib, compressionTypeZstd } from './limits.js';
import { zstdFrameExtent } from './zstd-frame.js';

/** QEMU's deflateInit2 window: 2^12 bytes, raw deflate (negative windowBits). */
export const deflateWindowBits = 12;
/** QEMU's deflateInit2 memLevel. */
export const deflateMemLevel = 9;
/** ZSTD_CLEVEL_DEFAULT: QEMU sets no level. */
const zstdLevel = 3;
/** Deflate on libuv's thread pool, so the clusters of one write compress in parallel as QEMU's qcow2_co_compress threads do. */
const deflateRawAsync = promisify(deflateRaw);

/**
 * The WebAssembly zstd module, instantiated once, on the first zstd stream. Its
 * init() instantiates a new module each time (stale heap views then corrupt the
 * next call), so everything in the process goes through this one promise.
 */
let zstdReady: Promise<void> | undefined;
function zstd(): Promise<void> {
  zstdReady ??= zstdInit();
  return zstdReady;
}

export function compressedClusters(d: CompressedDescriptor, g: Geometry): number[] {
  const first = Math.floor(d.offset / g.clusterSize);
  const last = Math.floor((d.offset + d.length - 1) / g.clusterSize);
  const out: number[] = [];
  for (let c = first; c <= last; c++) out.push(c);
  return out;
}

/**
 * Compress one whole guest cluster with the image's compression type
 * (qcow2_compress with Z_DEFAULT_COMPRESSION, or qcow2_zstd_compress). Returns
 * undefined when the stream would not be shorter than the cluster: QEMU then
 * writes the cluster uncompressed (its output buffer holds cluster_size - 1).
 * zlib runs off the main thread (several calls may be in flight); zstd (WebAssembly) on it.
 */
export async function compressCluster(cluster: Uint8Array, g: Geometry, compressionType: number): Promise<Uint8Array | undefined> {
  assert(cluster.length === g.clusterSize, 'a compressed write covers one whole cluster');
  let out: Uint8Array;
  if (compressionType === compressionTypeZstd) {
    await zstd();
    out = zstdCompress(cluster, zstdLevel);
  } else {
    assert(compressionType === compressionTypeZlib, 'open refuses unknown compression types');
    const deflated = await deflateRawAsync(cluster, { windowBits: deflateWindowBits, memLevel: deflateMemLevel, level: constants.Z_DEFAULT_COMPRESSION });
    out = new Uint8Array(deflated.buffer, deflated.byteOffset, deflated.length);
  }
  assert(out.length > 0, 'a compressed stream has at least one byte');
  return out.length <= g.clusterSize - 1 ? out : undefined;
}

/**
 * Inflate one cluster. The stream may end early or be followed by other data;
 * its sectors may reach into the last, partial sector of the file (QEMU writes
 * the last stream unpadded), never further. The output is bounded by the cluster
 * size whatever the stream says (no decompression bomb). Errors: Qcow2Error
 * 'corrupt' for sectors past the file, a stream that does not inflate, or one
 * that inflates to anything but exactly one cluster.
 */
export async function readCompressedCluster(file: BlockFile, d: CompressedDescriptor, g: Geometry, compressionType: number): Promise<Uint8Array> {
  const fileLength = await file.length();
  const sectorsEnd = Math.ceil(fileLength / compressedSectorBytes) * compressedSectorBytes;
  if (d.offset + d.length > sectorsEnd) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset}: its ${d.length} bytes of sectors run past the end of the file (${fileLength} bytes)`);
  }
  const input = await file.pread(d.offset, d.length);
  let output: Uint8Array;
  try {
    output = compressionType === compressionTypeZstd ? await decompressZstd(input, g, d.offset) : inflate(input, g);
  } catch (cause) {
    if (cause instanceof Qcow2Error) throw cause;
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
  if (output.length !== g.clusterSize) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${d.offset} inflates to ${output.length} bytes, expected ${g.clusterSize}`);
  }
  return output;
}

function inflate(input: Uint8Array, g: Geometry): Uint8Array {
  const output = inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: g.clusterSize });
  return new Uint8Array(output.buffer, output.byteOffset, output.length);
}

/** The first zstd frame of the sectors, refused before decoding when it declares more than a cluster. */
async function decompressZstd(input: Uint8Array, g: Geometry, offset: number): Promise<Uint8Array> {
  const frame = zstdFrameExtent(input, `compressed cluster at ${offset}`);
  if (frame.contentSize !== undefined && frame.contentSize !== g.clusterSize) {
    throw new Qcow2Error('corrupt', `compressed cluster at ${offset}: zstd frame declares ${frame.contentSize} bytes, expected ${g.clusterSize}`);
  }
  await zstd();
  return zstdDecompress(input.subarray(0, frame.length), { defaultHeapSize: g.clusterSize });
}
