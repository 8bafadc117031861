// Where the structures of a *valid* base image are, so the mutator can aim at
// them: header fields, header extensions, L1/L2 entries, reftable entries,
// refblocks and snapshot entries. This reads images QEMU just wrote; it bounds
// every walk (a table that does not fit the file is skipped, not trusted) but
// is no validator — the engine and the model are what the mutants test.
import type { HeaderField, SnapshotField, TableName } from '../case/types.js';

/** Header fields: byte offset and width (digest §2.1). */
export const headerFields: Readonly<Record<HeaderField, readonly [offset: number, bytes: number]>> = {
  magic: [0, 4],
  version: [4, 4],
  backing_file_offset: [8, 8],
  backing_file_size: [16, 4],
  cluster_bits: [20, 4],
  size: [24, 8],
  crypt_method: [32, 4],
  l1_size: [36, 4],
  l1_table_offset: [40, 8],
  refcount_table_offset: [48, 8],
  refcount_table_clusters: [56, 4],
  nb_snapshots: [60, 4],
  snapshots_offset: [64, 8],
  incompatible_features: [72, 8],
  compatible_features: [80, 8],
  autoclear_features: [88, 8],
  refcount_order: [96, 4],
  header_length: [100, 4],
  compression_type: [104, 1],
};

/** Snapshot entry fields, relative to the entry start (digest §6.1). */
export const snapshotFields: Readonly<Record<SnapshotField, readonly [offset: number, bytes: number]>> = {
  l1_table_offset: [0, 8],
  l1_size: [8, 4],
  id_str_size: [12, 2],
  name_size: [14, 2],
  vm_state_size: [32, 4],
  extra_data_size: [36, 4],
  disk_size: [48, 8],
};

export interface ExtensionLocation {
  /** Offset of the 8-byte (type, length) header; the end marker is included. */
  readonly offset: number;
  readonly type: number;
  readonly length: number;
}

export interface ImageLayout {
  readonly fileLength: number;
  readonly clusterSize: number;
  readonly refcountBits: number;
  readonly extensions: readonly ExtensionLocation[];
  /** File offsets of 8-byte entries per table (refblock: of each refcount entry's first byte). Non-zero entries first. */
  readonly entries: Readonly<Record<TableName, readonly number[]>>;
  /** How many of `entries[table]` (the first ones) are non-zero. */
  readonly nonZeroCount: Readonly<Record<TableName, number>>;
  readonly snapshotEntries: readonly number[];
}

export function readBE(bytes: Uint8Array, offset: number, width: number): bigint {
  let value = 0n;
  for (let i = 0; i < width; i++) value = (value << 8n) | BigInt(bytes[offset + i] ?? 0);
  return value;
}

/** Tables larger than this are not walked (base images are small). */
const walkEntriesMax = 1 << 16;
const offsetMask = 0x00fffffffffffe00n;

export function locate(bytes: Uint8Array): ImageLayout {
  const field = (name: HeaderField) => readBE(bytes, headerFields[name][0], headerFields[name][1]);
  const clusterBits = Number(field('cluster_bits'));
  const clusterSize = 2 ** clusterBits;
  const version = Number(field('version'));
  const refcountBits = version >= 3 ? 2 ** Number(field('refcount_order')) : 16;
  const headerLength = version >= 3 ? Number(field('header_length')) : 72;
  const fileLength = bytes.length;
  const inFile = (offset: bigint, length: number) => offset > 0n && offset + BigInt(length) <= BigInt(fileLength);

  const extensions: ExtensionLocation[] = [];
  for (let at = headerLength; at + 8 <= clusterSize && extensions.length < 64; ) {
    const type = Number(readBE(bytes, at, 4));
    const length = Number(readBE(bytes, at + 4, 4));
    extensions.push({ offset: at, type, length });
    if (type === 0) break;
    at += 8 + Math.ceil(length / 8) * 8;
  }

  const tableEntries = (offset: bigint, count: number): number[] => {
    if (count > walkEntriesMax || !inFile(offset, count * 8)) return [];
    return Array.from({ length: count }, (_, i) => Number(offset) + i * 8);
  };
  const nonZeroFirst = (offsets: number[]) => [
    ...offsets.filter((o) => readBE(bytes, o, 8) !== 0n),
    ...offsets.filter((o) => readBE(bytes, o, 8) === 0n),
  ];
  const nonZero = (offsets: number[]) => offsets.filter((o) => readBE(bytes, o, 8) !== 0n).length;

  const l1 = tableEntries(field('l1_table_offset'), Number(field('l1_size')));
  const l2: number[] = [];
  for (const entry of l1) {
    const table = readBE(bytes, entry, 8) & offsetMask;
    if (table !== 0n) l2.push(...tableEntries(table, clusterSize / 8));
  }
  const reftable = tableEntries(field('refcount_table_offset'), (Number(field('refcount_table_clusters')) * clusterSize) / 8);
  const refblock: number[] = [];
  const refEntryBytes = Math.max(1, refcountBits / 8);
  for (const entry of reftable) {
    const block = readBE(bytes, entry, 8) & ~0x1ffn;
    if (block === 0n || !inFile(block, clusterSize)) continue;
    for (let i = 0; i < clusterSize / refEntryBytes && refblock.length < walkEntriesMax; i++) refblock.push(Number(block) + i * refEntryBytes);
  }

  const snapshotEntries: number[] = [];
  const snapshotL1: number[] = [];
  let at = Number(field('snapshots_offset'));
  const count = Math.min(Number(field('nb_snapshots')), 256);
  for (let i = 0; i < count && at + 40 <= fileLength; i++) {
    snapshotEntries.push(at);
    snapshotL1.push(...tableEntries(readBE(bytes, at, 8), Number(readBE(bytes, at + 8, 4))));
    const extra = Number(readBE(bytes, at + 36, 4));
    const idSize = Number(readBE(bytes, at + 12, 2));
    const nameSize = Number(readBE(bytes, at + 14, 2));
    at += Math.ceil((40 + extra + idSize + nameSize) / 8) * 8;
  }

  return {
    fileLength,
    clusterSize,
    refcountBits,
    extensions,
    entries: {
      l1: nonZeroFirst(l1),
      l2: nonZeroFirst(l2),
      reftable: nonZeroFirst(reftable),
      refblock: nonZeroFirst(refblock),
      'snapshot-l1': nonZeroFirst(snapshotL1),
    },
    nonZeroCount: {
      l1: nonZero(l1),
      l2: nonZero(l2),
      reftable: nonZero(reftable),
      refblock: nonZero(refblock),
      'snapshot-l1': nonZero(snapshotL1),
    },
    snapshotEntries,
  };
}
