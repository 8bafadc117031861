// The one classifier from a raw L1/L2 entry to its kind (qcow2_get_cluster_type),
// and the masks of digest §4. Offsets stay bigint here and nowhere else.
export const l1eOffsetMask = 0x00fffffffffffe00n;
export const l1eReservedMask = 0x7f000000000001ffn;
export const l2eOffsetMask = 0x00fffffffffffe00n;
export const l2eStdReservedMask = 0x3f000000000001fen;
export const reftOffsetMask = 0xfffffffffffffe00n;
export const reftReservedMask = 0x1ffn;
export const oflagCopied = 1n << 63n;
export const oflagCompressed = 1n << 62n;
export const oflagZero = 1n;

export type EntryKind = 'unallocated' | 'zero-plain' | 'zero-alloc' | 'normal' | 'compressed';

/**
 * With extended L2 entries (`extendedL2`) the zero flag is reserved and ignored, as
 * in QEMU: such an entry is unallocated, normal or compressed, its subcluster
 * bitmap says the rest.
 */
export function classifyL2Entry(entry: bigint, extendedL2 = false): EntryKind {
  if ((entry & oflagCompressed) !== 0n) return 'compressed';
  if ((entry & oflagZero) !== 0n && !extendedL2) return (entry & l2eOffsetMask) !== 0n ? 'zero-alloc' : 'zero-plain';
  return (entry & l2eOffsetMask) === 0n ? 'unallocated' : 'normal';
}

/** Host byte range [start, start + length) of a compressed descriptor (qcow2_parse_compressed_l2_entry). */
export function compressedRange(entry: bigint, clusterBits: number): { start: bigint; length: bigint } {
  const shift = BigInt(62 - (clusterBits - 8));
  const start = entry & ((1n << shift) - 1n);
  const sectors = ((entry >> shift) & ((1n << BigInt(clusterBits - 8)) - 1n)) + 1n;
  return { start, length: sectors * 512n - (start & 511n) };
}
