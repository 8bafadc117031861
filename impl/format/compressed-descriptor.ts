// Compressed cluster descriptor (digest §4.3): bits 0..x-1 host byte offset,
// bits x..61 the number of additional 512-byte sectors, x = 62 - (cluster_bits - 8).
import { toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';

export const compressedSectorBytes = 512;

export interface CompressedDescriptor {
  /** Host byte offset of the compressed stream (not aligned). */
  offset: number;
  /** Bytes to read from offset (whole sectors, minus the offset inside the first). */
  length: number;
}

export function decodeCompressed(raw: bigint, clusterBits: number): CompressedDescriptor {
  const x = BigInt(62 - (clusterBits - 8));
  const offset = toSafeNumber(raw & ((1n << x) - 1n), 'compressed cluster offset');
  const sectors = Number((raw >> x) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1;
  const length = sectors * compressedSectorBytes - (offset % compressedSectorBytes);
  assert(length > 0, 'a compressed stream has at least one byte');
  return { offset, length };
}

/** Descriptor bits (without the COMPRESSED flag) for `length` bytes at `offset`. */
export function encodeCompressed(d: CompressedDescriptor, clusterBits: number): bigint {
  const x = BigInt(62 - (clusterBits - 8));
  assert(d.length > 0 && BigInt(d.offset) < 1n << x, 'compressed offset fits the descriptor');
  const extra = Math.floor((d.offset + d.length - 1) / compressedSectorBytes) - Math.floor(d.offset / compressedSectorBytes);
  assert(extra < 2 ** (clusterBits - 8), 'compressed sector count fits the descriptor');
  return BigInt(d.offset) | (BigInt(extra) << x);
}
