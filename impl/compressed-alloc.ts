// Byte-level packing of compressed streams (QEMU qcow2_alloc_bytes): streams are
// laid end to end from a free-byte offset kept per open image (s->free_byte_offset,
// never stored on disk). A stream that does not fit the rest of the current host
// cluster continues into the next one when the allocator hands out exactly that
// cluster (it straddles), else starts at the new cluster. Every host cluster a
// stream touches gains one reference.
import type { ImageState } from './state.js';
import { assert } from './assert.js';

/** The next free byte, strictly inside a host cluster some stream of ours touches. */
const freeByteOffsets = new WeakMap<ImageState, number>();

/**
 * Whether the free-byte cluster can take another stream: no reference to it is
 * waiting to be dropped (it could then be freed and handed out again) and its
 * refcount can still grow (QEMU: refcount == refcount_max starts a new cluster).
 */
async function usable(s: ImageState, cluster: number): Promise<boolean> {
  if (s.refcounts.isUndurable(cluster)) return false;
  const count = await s.refcounts.logical(cluster);
  return count >= 1 && count < s.g.refcountMax;
}

/**
 * Host bytes for a stream of `size` bytes (1 … clusterSize); returns the host
 * byte offset, with the refcounts of the touched clusters already raised.
 */
export async function allocCompressedBytes(s: ImageState, size: number): Promise<number> {
  const cs = s.g.clusterSize;
  assert(Number.isSafeInteger(size) && size > 0 && size <= cs, 'a stream fits one cluster');
  let free = freeByteOffsets.get(s);
  if (free !== undefined && !(await usable(s, Math.floor(free / cs)))) free = undefined;
  let offset: number;
  if (free !== undefined && cs - (free % cs) >= size) {
    offset = free;
    await s.refcounts.increment(Math.floor(free / cs));
  } else {
    const fresh = await s.refcounts.allocate(1);
    const straddles = free !== undefined && Math.ceil(free / cs) * cs === fresh;
    offset = straddles && free !== undefined ? free : fresh;
    if (straddles) await s.refcounts.increment(Math.floor(offset / cs));
  }
  assert(Math.floor((offset + size - 1) / cs) - Math.floor(offset / cs) <= 1, 'a stream touches at most two host clusters');
  const end = offset + size;
  if (end % cs === 0) freeByteOffsets.delete(s);
  else freeByteOffsets.set(s, end);
  return offset;
}

/**
 * Called by the flush before it makes dropped references durable: a free-byte
 * cluster that lost references may have reached 0 and, once the drop is
 * durable, be handed out again for something else, so it is given up now,
 * while the drop still shows (QEMU 7.2 keeps it: docs/qemu-findings.md).
 */
export async function forgetFreedCompressedBytes(s: ImageState): Promise<void> {
  const free = freeByteOffsets.get(s);
  if (free !== undefined && !(await usable(s, Math.floor(free / s.g.clusterSize)))) freeByteOffsets.delete(s);
}
