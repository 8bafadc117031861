// The snapshot table (digest §6.1): entries 8-byte aligned relative to the file,
// length-prefixed id and name, extra data with disk_size.
import { readAt, u16, u32, u64, type ByteReader } from './byte-reader.js';
import { DecodeError } from './decode-error.js';
import type { Header } from './header.js';
import * as L from './limits.js';

export interface SnapshotEntry {
  /** File offset of the entry. */
  readonly entryOffset: number;
  /** Raw u64: QEMU's check counts an unaligned or far offset as damage, so it is not bounded here. */
  readonly l1TableOffset: bigint;
  readonly l1Size: number;
  readonly id: string;
  readonly name: string;
  readonly vmStateSize: bigint;
  readonly extraDataSize: number;
  /** Raw u64 from extra data (QEMU's check does not bound it); undefined when the extra data does not reach it. */
  readonly diskSize?: bigint;
}

/** Problems QEMU's check counts as corruptions rather than failures to read. */
export interface SnapshotTable {
  readonly entries: readonly SnapshotEntry[];
  /** Byte size as QEMU measures it (no padding after the last entry). */
  readonly byteSize: number;
  /** v3 entries with extra data shorter than 16 bytes (qemu-img check counts each as a corruption). */
  readonly incompleteEntries: number;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * Throws DecodeError where QEMU's qcow2_check_read_snapshot_table (without
 * repair) fails to read the table: count or offset invalid, extra data over
 * 1024 bytes, table over 64 MiB.
 */
export function decodeSnapshotTable(reader: ByteReader, header: Header): SnapshotTable {
  const { nbSnapshots, snapshotsOffset, clusterSize } = header;
  if (nbSnapshots > L.snapshotsCountMax) throw new DecodeError('nb_snapshots', String(nbSnapshots), `at most ${L.snapshotsCountMax}`, 60);
  // qcow2_validate_table checks the alignment even for an empty table.
  if (snapshotsOffset > 2n ** 63n - 1n - BigInt(nbSnapshots * L.snapshotEntryFixedBytes)) {
    throw new DecodeError('snapshots_offset', String(snapshotsOffset), `at most ${2n ** 63n - 1n - BigInt(nbSnapshots * L.snapshotEntryFixedBytes)} (INT64_MAX less the table's ${nbSnapshots * L.snapshotEntryFixedBytes} bytes)`, 64);
  }
  if (snapshotsOffset % BigInt(clusterSize) !== 0n) throw new DecodeError('snapshots_offset', String(snapshotsOffset), `a multiple of the cluster size ${clusterSize}`, 64);
  if (nbSnapshots === 0) return { entries: [], byteSize: 0, incompleteEntries: 0 };
  const entries: SnapshotEntry[] = [];
  let incompleteEntries = 0;
  // Past 2^53 the table lies past any file: it reads as zeros, and offsets stay exact as bigints.
  let at = snapshotsOffset;
  for (let i = 0; i < nbSnapshots; i++) {
    at = (at + 7n) & ~7n;
    const fixed = readAt(reader, at, L.snapshotEntryFixedBytes);
    const extraDataSize = u32(fixed, 36);
    const idSize = u16(fixed, 12);
    const nameSize = u16(fixed, 14);
    if (extraDataSize > L.snapshotExtraDataMax) {
      throw new DecodeError(`snapshot ${i} extra_data_size`, String(extraDataSize), `at most ${L.snapshotExtraDataMax}`, Number(at) + 36);
    }
    if (header.version === 3 && extraDataSize < L.snapshotExtraDataMinV3) incompleteEntries++;
    const extra = readAt(reader, at + BigInt(L.snapshotEntryFixedBytes), extraDataSize);
    const strings = readAt(reader, at + BigInt(L.snapshotEntryFixedBytes + extraDataSize), idSize + nameSize);
    entries.push({
      entryOffset: Number(at),
      l1TableOffset: u64(fixed, 0),
      l1Size: u32(fixed, 8),
      id: decoder.decode(strings.subarray(0, idSize)),
      name: decoder.decode(strings.subarray(idSize)),
      vmStateSize: extraDataSize >= 8 ? u64(extra, 0) : BigInt(u32(fixed, 32)),
      extraDataSize,
      ...(extraDataSize >= 16 ? { diskSize: u64(extra, 8) } : {}),
    });
    at += BigInt(L.snapshotEntryFixedBytes + extraDataSize + idSize + nameSize);
    if (at - snapshotsOffset > BigInt(L.snapshotTableBytesMax)) {
      throw new DecodeError('snapshot table size', String(at - snapshotsOffset), `at most ${L.snapshotTableBytesMax}`, 64);
    }
  }
  return { entries, byteSize: Number(at - snapshotsOffset), incompleteEntries };
}
