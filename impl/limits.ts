// Limits on every size an image can claim, checked before anything is allocated
// from it (style.md §4). Values and reasons from QEMU's block/qcow2.h.
import { assert } from './assert.js';
import { Qcow2FormatError, stricterThanQemu } from './errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const qcowMagic = 0x514649fb;
/** 512 B: smaller clusters cannot hold a header (QEMU MIN_CLUSTER_BITS). */
export const clusterBitsMin = 9;
/** 2 MiB: QEMU MAX_CLUSTER_BITS; bigger clusters make COW and caches too coarse. */
export const clusterBitsMax = 21;
/** QEMU QCOW_MAX_L1_SIZE: caps the in-memory L1 table (and the virtual size). */
export const l1SizeBytesMax = 32 * MiB;
/** QEMU QCOW_MAX_REFTABLE_SIZE: caps the in-memory refcount table. */
export const reftableSizeBytesMax = 8 * MiB;
/** QEMU QCOW_MAX_SNAPSHOTS. */
export const snapshotsCountMax = 65536;
/** QEMU QCOW_MAX_SNAPSHOTS_SIZE: the whole snapshot table is read at open. */
export const snapshotTableBytesMax = 1024 * 65536;
/** QEMU QCOW_MAX_SNAPSHOT_EXTRA_DATA. */
export const snapshotExtraDataBytesMax = 1024;
/** QEMU QCOW_MAX_CLUSTER_OFFSET: L1/L2 offsets have 56 bits. */
export const hostOffsetMax = 2n ** 56n - 1n;
/** The spec's limit on the backing file name. */
export const backingNameBytesMax = 1023;
/**
 * Backing files below one overlay. QEMU 7.2 has no limit: qemu-io opened a
 * chain of 1000 files and died of a stack overflow (SIGSEGV) at 1100.
 */
export const backingChainDepthMax = 1000;
/** QEMU reads the backing format into a 16-byte buffer. */
export const backingFormatBytesMax = 15;
/** v2 header struct size. */
export const headerV2Bytes = 72;
/** v3 header size QEMU >= 5.1 writes (with the compression type byte and padding). */
export const headerV3Bytes = 112;
/** Smallest valid v3 header_length. */
export const headerV3BytesMin = 104;
/** Bits QEMU writes into the feature name table; we support dirty and corrupt. */
export const incompatDirty = 1n;
export const incompatCorrupt = 2n;
/** The header's compression_type values (QCOW2_COMPRESSION_TYPE_ZLIB, _ZSTD). */
export const compressionTypeZlib = 0;
export const compressionTypeZstd = 1;
/** Bit 3: the compression_type field is not zlib. */
export const incompatCompression = 8n;
/** Incompatible bit 4: extended L2 entries, 32 subclusters per cluster (format/l2-entry-extended.ts). */
export const incompatExtendedL2 = 16n;
export const incompatSupportedMask = incompatDirty | incompatCorrupt | incompatCompression | incompatExtendedL2;
/** QCOW_EXTL2_SUBCLUSTERS_PER_CLUSTER. */
export const subclustersPerCluster = 32;
/** qcow2_do_open: a subcluster is at least 512 bytes, so extended L2 needs clusters of 16 KiB or more. */
export const extendedL2ClusterBitsMin = clusterBitsMin + Math.log2(subclustersPerCluster);
export const compatLazyRefcounts = 1n;
/** Refcount orders 0..6 (1..64-bit). */
export const refcountOrderMax = 6;
/** Autoclear bit 0: the bitmaps extension is consistent with the image. */
export const autoclearBitmaps = 1n;
/** The bitmaps extension's data: nb_bitmaps, reserved, directory size and offset. */
export const bitmapsExtensionBytes = 24;
/** QEMU QCOW2_MAX_BITMAPS. */
export const bitmapsCountMax = 65535;
/** QEMU QCOW2_MAX_BITMAP_DIRECTORY_SIZE: the directory is read whole at open. */
export const bitmapDirectoryBytesMax = 1024 * bitmapsCountMax;
/** Fixed part of a bitmap directory entry (Qcow2BitmapDirEntry). */
export const bitmapDirEntryFixedBytes = 24;
/** QEMU BME_MAX_TABLE_SIZE: entries of one bitmap table. */
export const bitmapTableEntriesMax = 0x8000000;
/** QEMU BME_MAX_PHYS_SIZE: one bitmap's data clusters, which QEMU holds in RAM. */
export const bitmapDataBytesMax = 0x20000000;
/** QEMU BME_MIN/MAX_GRANULARITY_BITS: 512 B to 2 GiB of guest data per bit. */
export const bitmapGranularityBitsMin = 9;
export const bitmapGranularityBitsMax = 31;
/** QEMU BME_MAX_NAME_SIZE. */
export const bitmapNameBytesMax = 1023;
/** Snapshot extra data QEMU >= 5.2 writes: vm_state_size_large, disk_size, icount. */
export const snapshotExtraDataBytesWritten = 24;

// Relationships the code relies on (TigerBeetle-style load-time checks).
assert(2 ** clusterBitsMin >= headerV3Bytes + 8, 'a minimal header and end marker fit cluster 0');
assert(l1SizeBytesMax % 8 === 0 && reftableSizeBytesMax % 8 === 0, 'tables hold whole 8-byte entries');
assert(Number(hostOffsetMax) > 2 ** 53 - 1, 'hostOffsetMax is checked as bigint');
assert(bitmapDataBytesMax / 2 ** clusterBitsMin <= bitmapTableEntriesMax, 'the data limit bounds every bitmap table below BME_MAX_TABLE_SIZE');

/** The fields that place a table: names and byte positions as on disk, for error messages. */
export interface TableFields {
  readonly offsetField: string;
  readonly offsetByte?: number;
  readonly sizeField: string;
  readonly sizeByte?: number;
  /** What one unit of the size field stands for: 8 bytes ('entries') for an L1, a cluster for the refcount table. */
  readonly sizeUnitBytes: number;
  readonly sizeUnit: string;
}

/** The header's tables (digest §2). */
export const l1TableFields: TableFields = { offsetField: 'l1_table_offset', offsetByte: 40, sizeField: 'l1_size', sizeByte: 36, sizeUnitBytes: 8, sizeUnit: 'entries' };
export const snapshotTableFields: TableFields = { offsetField: 'snapshots_offset', offsetByte: 64, sizeField: 'nb_snapshots', sizeByte: 60, sizeUnitBytes: 40, sizeUnit: 'snapshots' };
export function reftableFields(clusterSize: number): TableFields {
  return { offsetField: 'refcount_table_offset', offsetByte: 48, sizeField: 'refcount_table_clusters', sizeByte: 56, sizeUnitBytes: clusterSize, sizeUnit: 'clusters' };
}

/** A snapshot's L1 table (digest §6.1). */
export function snapshotL1Fields(id: string): TableFields {
  return { offsetField: `snapshot ${id} l1_table_offset`, sizeField: `snapshot ${id} l1_size`, sizeUnitBytes: 8, sizeUnit: 'entries' };
}

/**
 * QEMU's qcow2_validate_table: a table of entriesCount entries at offset must be
 * cluster aligned and not larger than bytesMax. Run before any buffer is sized by
 * entriesCount. With `fileLength` (a read-write open), the table must also start
 * inside the file, which QEMU does not ask: it reads past the end as zeros, and
 * so does a read-only open here. Errors name the header field, its byte, the value
 * and the limit.
 */
export function validateTable(
  offset: number,
  entriesCount: number,
  entryBytes: number,
  bytesMax: number,
  fields: TableFields,
  clusterSize: number,
  fileLength: number | undefined,
): void {
  const bytes = entriesCount * entryBytes;
  if (bytes > bytesMax) {
    throw new Qcow2FormatError(fields.sizeField, bytes / fields.sizeUnitBytes, `at most ${bytesMax / fields.sizeUnitBytes} ${fields.sizeUnit}`, fields.sizeByte);
  }
  if (offset % clusterSize !== 0) {
    throw new Qcow2FormatError(fields.offsetField, offset, `a multiple of the cluster size ${clusterSize}`, fields.offsetByte);
  }
  if (fileLength !== undefined && entriesCount > 0 && offset + bytes > fileLength + clusterSize) {
    throw new Qcow2FormatError(fields.offsetField, offset, `the table's ${bytes} bytes must lie inside the file of ${fileLength} bytes; ${stricterThanQemu}`, fields.offsetByte);
  }
}
