// Compressed guest writes (QEMU qcow2_co_pwritev_compressed_part and
// qcow2_alloc_compressed_cluster_offset): whole clusters only, each compressed
// alone (zlib or zstd, as the header says) and packed into host space by compressed-alloc.ts. A cluster that does
// not compress is written as a normal cluster; a cluster that has a host offset
// is refused, the others of the request still complete.
import type { ImageState } from './state.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { allocCompressedBytes } from './compressed-alloc.js';
import { compressCluster } from './compressed.js';
import { writeGuest } from './data-path.js';
import { checkOverlap } from './host-write.js';
import { emptyBitmap } from './format/l2-entry-extended.js';
import { markDirtyBit } from './flush.js';

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
  for (let start = offset; start < end; start += cs) {
    const piece = data.subarray(start - offset, Math.min(end, start + cs) - offset);
    if (!(await writeCompressedCluster(s, start / cs, piece))) refused.push(start / cs);
  }
  if (refused.length > 0) {
    throw new Qcow2Error('compressed-overwrite', `compressed write: guest clusters ${refused.join(', ')} are allocated (compression can't overwrite anything)`);
  }
}

/** One cluster; false when it has a host offset (nothing written then). */
async function writeCompressedCluster(s: ImageState, guestCluster: number, piece: Uint8Array): Promise<boolean> {
  const cs = s.g.clusterSize;
  const cluster = new Uint8Array(cs);
  cluster.set(piece);
  const stream = await compressCluster(cluster, s.g, s.header.compressionType);
  if (stream === undefined) {
    await writeGuest(s, guestCluster * cs, piece);
    return true;
  }
  // Like get_cluster_table, the table is made private before the entry is looked at.
  const table = await s.map.privatize(s.map.l1Index(guestCluster));
  const old = table.get(guestCluster % s.g.l2EntriesCount);
  if (old.kind !== 'unallocated' && old.kind !== 'zero-plain') return false;
  const host = await allocCompressedBytes(s, stream.length);
  try {
    checkOverlap(s, host, stream.length);
    await s.file.pwrite(host, stream);
  } catch (error) {
    await releaseStream(s, host, stream.length);
    throw error;
  }
  await markDirtyBit(s);
  // With extended L2 the bitmap is cleared: a compressed cluster has no subclusters.
  await s.map.setEntry(guestCluster, { kind: 'compressed', descriptor: { offset: host, length: descriptorLength(host, stream.length) } }, s.g.extendedL2 ? emptyBitmap : undefined);
  return true;
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
