// Extended L2 entries (incompatible bit 4, digest §4 / QEMU's qcow2.txt
// "Extended L2 Entries"): each entry is 128 bits, the standard 64-bit entry and
// a 64-bit subcluster bitmap. Bits 0-31 of the bitmap say which of the 32
// subclusters are allocated (read from the host cluster), bits 32-63 which read
// as zeros. Bit 0 of the first word (the zero flag) is reserved and ignored.

export const subclustersPerCluster = 32;
/** qcow2_do_open refuses a subcluster smaller than 512 bytes, so clusters of at least 16 KiB. */
export const extendedL2ClusterBitsMin = 14;
/** QCOW_L2_BITMAP_ALL_ALLOC: the allocation half of the bitmap. */
export const bitmapAllocMask = 0xffffffffn;
/** QCOW_L2_BITMAP_ALL_ZEROES: the zero half. */
export const bitmapZeroMask = 0xffffffffn << 32n;

/** Bytes of one L2 entry: 16 with extended L2, else 8. */
export function l2EntryBytes(extendedL2: boolean): number {
  return extendedL2 ? 16 : 8;
}

/** The two halves of a subcluster bitmap, as 32-bit masks (bit i = subcluster i). */
export interface SubclusterBitmap {
  readonly alloc: number;
  readonly zero: number;
}

export function splitBitmap(bitmap: bigint): SubclusterBitmap {
  return { alloc: Number(bitmap & bitmapAllocMask), zero: Number((bitmap >> 32n) & bitmapAllocMask) };
}

/** QEMU's QCOW2_SUBCLUSTER_INVALID for a normal cluster: some subcluster both allocated and zero. */
export function allocatedAndZero(bitmap: bigint): boolean {
  return ((bitmap >> 32n) & bitmap) !== 0n;
}
