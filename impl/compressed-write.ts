// Compressed guest writes (QEMU qcow2_co_pwritev_compressed_part and
// qcow2_alloc_compressed_cluster_offset): whole clusters only, each compressed
// alone (zlib or zstd, as the header says) and packed into host space by compressed-alloc.ts. A cluster that does
// not compress is written as a normal cluster; a cluster that has a host offset
// is refused, the others of the request still complete.
//
// Speed without changing the result: a window of clusters is compressed at
// once (zlib in parallel on the thread pool), and streams that land end to end
// in host space are written with one pwrite; their L2 entries are set only
// after that write, so no table can reach a stream before its bytes are there.
import type { ImageState } from './state.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { allocCompressedBytes } from './compressed-alloc.js';
import { compressCluster } from './compressed.js';
import { writeGuest } from './data-path.js';
import { checkOverlap } from './host-write.js';
import { emptyBitmap } from './format/l2-entry-extended.js';
import { markDirtyBit } from './flush.js';

/** Clusters compressed at once: enough to keep both cores busy, few deflate states (about 272 KiB each) alive. */
export const compressWindowClusters = 8;
/** Largest run of streams written with one pwrite. */
export const streamRunBytesMax = 4 * 1024 * 1024;

/**
 * Write `data` at `offset` as compressed clusters. `offset` is cluster-aligned
 * and `data` is whole clusters, except that it may end at the virtual size (the
 * last cluster's tail is then compressed as zeros). The range is inside the
 * disk (the caller checks). Errors: Qcow2Error 'invalid-argument' for a range
 * that is not whole clusters, 'compressed-overwrite' (after every other cluster
 * is written) when a cluster already has a host offset.
 */
export async function writeCompressedGuest(s: ImageState, offset: number, data: Uint8Array): Promise<void> {
  const cs = s.g.clusterSize;
  const end = offset + data.length;
  assert(end <= s.header.size, 'the caller keeps compressed writes inside the disk');
  if (offset % cs !== 0 || (end % cs !== 0 && end !== s.header.size)) {
    throw new Qcow2Error('invalid-argument', `compressed write of ${data.length} bytes at ${offset}: not whole clusters of ${cs} bytes`);
  }
  const refused: number[] = [];
  const run = new StreamRun(s);
  try {
    await writeWindows(s, run, offset, data, refused);
  } catch (error) {
    // the streams placed before the failure are written and mapped, as they would be one at a time
    await run.write();
    throw error;
  }
  await run.write();
  if (refused.length > 0) {
    throw new Qcow2Error('compressed-overwrite', `compressed write: guest clusters ${refused.join(', ')} are allocated (compression can't overwrite anything)`);
  }
}

async function writeWindows(s: ImageState, run: StreamRun, offset: number, data: Uint8Array, refused: number[]): Promise<void> {
  const cs = s.g.clusterSize;
  const end = offset + data.length;
  for (let windowStart = offset; windowStart < end; windowStart += compressWindowClusters * cs) {
    const pieces: Uint8Array[] = [];
    for (let start = windowStart; start < Math.min(end, windowStart + compressWindowClusters * cs); start += cs) {
      pieces.push(data.subarray(start - offset, Math.min(end, start + cs) - offset));
    }
    const streams = await Promise.all(pieces.map((piece) => compressCluster(wholeCluster(piece, cs), s.g, s.header.compressionType)));
    for (const [k, piece] of pieces.entries()) {
      const guestCluster = windowStart / cs + k;
      const stream = streams[k];
      if (stream === undefined) {
        await run.write();
        await writeGuest(s, guestCluster * cs, piece);
      } else if (!(await placeStream(s, run, guestCluster, stream))) {
        refused.push(guestCluster);
      }
    }
  }
}

/** The piece itself when it is a whole cluster, else a copy padded with zeros (the tail at the virtual size). */
function wholeCluster(piece: Uint8Array, cs: number): Uint8Array {
  if (piece.length === cs) return piece;
  const cluster = new Uint8Array(cs);
  cluster.set(piece);
  return cluster;
}

/** One stream; false when its guest cluster has a host offset (nothing allocated then). */
async function placeStream(s: ImageState, run: StreamRun, guestCluster: number, stream: Uint8Array): Promise<boolean> {
  // Like get_cluster_table, the table is made private before the entry is looked at.
  const table = await s.map.privatize(s.map.l1Index(guestCluster));
  const old = table.get(guestCluster % s.g.l2EntriesCount);
  if (old.kind !== 'unallocated' && old.kind !== 'zero-plain') return false;
  const host = await allocCompressedBytes(s, stream.length);
  try {
    checkOverlap(s, host, stream.length);
  } catch (error) {
    await releaseStream(s, host, stream.length);
    throw error;
  }
  await run.add({ guestCluster, host, stream });
  return true;
}

interface PlacedStream {
  readonly guestCluster: number;
  readonly host: number;
  readonly stream: Uint8Array;
}

/** Streams allocated end to end, not written yet; write() writes them with one pwrite, then points their L2 entries at them. */
class StreamRun {
  private streams: PlacedStream[] = [];
  private bytes = 0;

  constructor(private readonly s: ImageState) {}

  async add(placed: PlacedStream): Promise<void> {
    const last = this.streams[this.streams.length - 1];
    if (last !== undefined && (last.host + last.stream.length !== placed.host || this.bytes + placed.stream.length > streamRunBytesMax)) await this.write();
    this.streams.push(placed);
    this.bytes += placed.stream.length;
  }

  async write(): Promise<void> {
    const streams = this.streams;
    if (streams.length === 0) return;
    this.streams = [];
    this.bytes = 0;
    const first = streams[0]!;
    const joined = streams.length === 1 ? first.stream : concat(streams.map((p) => p.stream));
    try {
      await this.s.file.pwrite(first.host, joined);
    } catch (error) {
      for (const p of streams) await releaseStream(this.s, p.host, p.stream.length);
      throw error;
    }
    await markDirtyBit(this.s);
    for (const p of streams) {
      // With extended L2 the bitmap is cleared: a compressed cluster has no subclusters.
      const descriptor = { offset: p.host, length: descriptorLength(p.host, p.stream.length) };
      await this.s.map.setEntry(p.guestCluster, { kind: 'compressed', descriptor }, this.s.g.extendedL2 ? emptyBitmap : undefined);
    }
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  assert(at === out.length, 'the run is the streams end to end');
  return out;
}

/** The descriptor's byte length: whole 512-byte sectors from the stream's start. */
function descriptorLength(host: number, streamBytes: number): number {
  const sectorEnd = Math.ceil((host + streamBytes) / 512) * 512;
  assert(sectorEnd - host >= streamBytes, 'the descriptor covers the stream');
  return sectorEnd - host;
}

/** Undo allocCompressedBytes for a stream that was never referenced. */
async function releaseStream(s: ImageState, host: number, streamBytes: number): Promise<void> {
  const cs = s.g.clusterSize;
  for (let c = Math.floor(host / cs); c <= Math.floor((host + streamBytes - 1) / cs); c++) await s.refcounts.decrement(c);
}
