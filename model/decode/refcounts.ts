// Refcount table and refcount blocks (digest §5.1): reading one cluster's
// refcount, all widths, sub-byte widths packed LSB-first.
import { readAt, u64Table, type ByteReader } from './byte-reader.js';
import type { Header } from './header.js';
import { reftOffsetMask } from './l2-entry.js';

export interface RefcountReader {
  readonly reftable: readonly bigint[];
  /** Refcount of host cluster `cluster`; 0 where no refblock covers it. Reads the refblock offset as stored (aligned or not). */
  refcount(cluster: number): bigint;
}

export function refcountReader(reader: ByteReader, header: Header): RefcountReader {
  const entriesCount = (header.refcountTableClusters * header.clusterSize) / 8;
  const reftable = u64Table(readAt(reader, header.refcountTableOffset, entriesCount * 8), entriesCount);
  const bits = 2 ** header.refcountOrder;
  const blockEntries = (header.clusterSize * 8) / bits;
  const cache = new Map<number, Uint8Array>();
  return {
    reftable,
    refcount(cluster) {
      const blockOffset = reftable[Math.floor(cluster / blockEntries)];
      if (blockOffset === undefined) return 0n;
      const offset = blockOffset & reftOffsetMask;
      if (offset === 0n || offset > BigInt(Number.MAX_SAFE_INTEGER)) return 0n;
      let block = cache.get(Number(offset));
      if (block === undefined) {
        block = reader.read(Number(offset), header.clusterSize);
        cache.set(Number(offset), block);
      }
      return refcountEntry(block, cluster % blockEntries, bits);
    },
  };
}

/** Entry `i` of a refblock of `bits`-bit refcounts (QEMU get_refcount_ro0..6). */
export function refcountEntry(block: Uint8Array, i: number, bits: number): bigint {
  if (bits < 8) {
    const perByte = 8 / bits;
    const byte = block[Math.floor(i / perByte)] ?? 0;
    return BigInt((byte >> ((i % perByte) * bits)) & ((1 << bits) - 1));
  }
  const bytes = bits / 8;
  let v = 0n;
  for (let k = 0; k < bytes; k++) v = (v << 8n) | BigInt(block[i * bytes + k] ?? 0);
  return v;
}
