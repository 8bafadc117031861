// Compressed-cluster damage: descriptors whose stream lies past the end of the
// file or over metadata, sector counts that reach into the next cluster or past
// the file, and wrong refcounts of a host cluster two streams share. The base
// (v3, 4 KiB clusters, 2-bit refcounts) has two streams packed into host cluster
// 5 (refcount 2) and a normal data cluster 6 at the end of the file.
import { compressedBit, type L2Entry, type Layout } from '../layout.js';
import { setU64 } from '../poke.js';
import { corrupt, isCompressed, leaksOnly, type DamageKind } from './types.js';

/** Bits of the host byte offset in a descriptor (digest §4.3): 62 - (cluster_bits - 8). */
function offsetBits(l: Layout): bigint {
  return BigInt(62 - (Math.log2(l.cs) - 8));
}

/** The n-th compressed entry of the active view. */
function stream(l: Layout, n: number): L2Entry {
  const streams = l.l2Entries().filter((e) => isCompressed(e.raw));
  const entry = streams[n];
  if (entry === undefined) throw new Error(`base image has no compressed entry ${n}`);
  return entry;
}

function streamOffset(l: Layout, entry: L2Entry): number {
  return Number(entry.raw & ((1n << offsetBits(l)) - 1n));
}

/** Rewrite a compressed entry with this host byte offset and this many 512-byte sectors. */
function setStream(image: Uint8Array, l: Layout, entry: L2Entry, offset: number, sectors: number): void {
  setU64(image, entry.at, compressedBit | (BigInt(sectors - 1) << offsetBits(l)) | BigInt(offset));
}

const base = 'v3-c4k-r2-compressed';

export const compressedKinds: readonly DamageKind[] = [
  {
    name: 'compressed-stream-past-eof',
    description: 'a compressed stream starts two clusters past the end of the file',
    base,
    damage: (image, l) => setStream(image, l, stream(l, 0), image.length + 2 * l.cs, 1),
    qemu: corrupt(1, 1),
    why: 'the reference is refused ("exceeding the end of the file by one cluster or more"); the host cluster of both streams keeps refcount 2 for the one stream left (leak)',
  },
  {
    name: 'compressed-stream-over-l2-table',
    description: 'a compressed stream points into the active L2 table',
    base,
    damage: (image, l) => setStream(image, l, stream(l, 0), l.l2TableOffset(0) + 0x100, 1),
    qemu: corrupt(1, 1),
    why: 'the L2 table cluster has refcount 1 and two references; the streams\' old host cluster loses one (leak)',
  },
  {
    name: 'compressed-shared-host-refcount-low',
    description: 'the host cluster two streams share has refcount 1',
    base,
    damage: (_image, l) => l.setRefcount(l.cluster(streamOffset(l, stream(l, 0))), 1),
    qemu: corrupt(1),
  },
  {
    name: 'compressed-shared-host-refcount-high',
    description: 'the host cluster two streams share has refcount 3',
    base,
    damage: (_image, l) => l.setRefcount(l.cluster(streamOffset(l, stream(l, 0))), 3),
    qemu: leaksOnly(1),
  },
  {
    name: 'compressed-sectors-into-next-cluster',
    description: 'a stream\'s sector count reaches through the normal data cluster after its host cluster',
    base,
    damage: (image, l) => setStream(image, l, stream(l, 0), streamOffset(l, stream(l, 0)), l.cs / 256),
    qemu: corrupt(1),
    why: 'the data cluster then has refcount 1 and two references',
  },
  {
    name: 'compressed-sectors-past-eof',
    description: 'a stream in the last sector of the file claims the most sectors a descriptor can hold',
    base,
    damage: (image, l) => setStream(image, l, stream(l, 1), image.length - 512, l.cs / 256),
    qemu: corrupt(1, 1),
    why: 'its range ends more than one cluster past the end of the file, so the reference is refused; the streams\' old host cluster loses one (leak)',
  },
];
