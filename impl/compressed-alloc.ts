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
  const stored = await s.refcounts.stored(cluster);
  return stored >= 1 && stored === (await s.refcounts.logical(cluster)) && stored < s.g.refcountMax;
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
 * Called by the flush before it applies pending decrements: a free-byte cluster
 * losing references may reach 0 and be allocated again for something else, so
 * it is given up now, while the pending decrement still shows.
 */
export async function forgetFreedCompressedBytes(s: ImageState): Promise<void> {
  const free = freeByteOffsets.get(s);
  if (free !== undefined && !(await usable(s, Math.floor(free / s.g.clusterSize)))) freeByteOffsets.delete(s);
}
