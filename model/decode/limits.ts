// Limits on sizes read from an image, checked before anything is sized by them.
// Values and reasons from QEMU's qcow2.h (digest §10).
const MiB = 1024 * 1024;

/** 512 B clusters: smaller would not hold the header. */
export const clusterBitsMin = 9;
/** 2 MiB clusters: QEMU's MAX_CLUSTER_BITS (larger tables would be too costly). */
export const clusterBitsMax = 21;
/** QCOW_MAX_L1_SIZE: active and snapshot L1 tables. */
export const l1SizeBytesMax = 32 * MiB;
/** QCOW_MAX_REFTABLE_SIZE. */
export const reftableSizeBytesMax = 8 * MiB;
/** QCOW_MAX_SNAPSHOTS. */
export const snapshotsCountMax = 65536;
/** QCOW_MAX_SNAPSHOTS_SIZE: the whole snapshot table. */
export const snapshotTableBytesMax = 1024 * 65536;
/** QCOW_MAX_SNAPSHOT_EXTRA_DATA, per entry. */
export const snapshotExtraDataMax = 1024;
/** Fixed part of a snapshot table entry. */
export const snapshotEntryFixedBytes = 40;
/** v3 entries need vm_state_size_large + disk_size. */
export const snapshotExtraDataMinV3 = 16;
/** refcount_order 6 = 64-bit refcounts. */
export const refcountOrderMax = 6;
/** Backing file name (spec). */
export const backingFileNameMax = 1023;
/** QEMU keeps the backing format in a 16-byte buffer. */
export const backingFormatMax = 15;
/** check_refcounts rejects snapshot L1 tables larger than this many entries. */
export const snapshotL1EntriesMax = l1SizeBytesMax / 8;
/** The bitmaps header extension: nb_bitmaps, reserved, directory size and offset. */
export const bitmapsExtensionBytes = 24;
/** QCOW2_MAX_BITMAPS. */
export const bitmapsCountMax = 65535;
/** QCOW2_MAX_BITMAP_DIRECTORY_SIZE. */
export const bitmapDirectoryBytesMax = 1024 * bitmapsCountMax;
/** BME_MAX_TABLE_SIZE: entries of one bitmap table. */
export const bitmapTableEntriesMax = 0x8000000;
/** BME_MAX_PHYS_SIZE: clusters of one bitmap's data, in bytes (bounds its size in RAM). */
export const bitmapDataBytesMax = 0x20000000;
/** BME_MIN/MAX_GRANULARITY_BITS: 512 B to 2 GiB of guest data per bit. */
export const bitmapGranularityBitsMin = 9;
export const bitmapGranularityBitsMax = 31;
/** BME_MAX_NAME_SIZE. */
export const bitmapNameBytesMax = 1023;
/** Fixed part of a bitmap directory entry (Qcow2BitmapDirEntry). */
export const bitmapDirEntryFixedBytes = 24;
/** Host offsets have 56 bits. */
export const hostOffsetMax = 2n ** 56n - 1n;
/** Incompatible feature bits this decoder understands: dirty (0), corrupt (1), compression type (3) and extended L2 (4). */
export const incompatibleKnownMask = 0b11011n;
/** Incompatible bit 4: extended L2 entries (subclusters). */
export const incompatibleExtendedL2 = 0b10000n;
/** Incompatible bit 3: compression_type is not zlib. */
export const incompatibleCompression = 0b1000n;
/** compression_type values: 0 zlib, 1 zstd. */
export const compressionTypeMax = 1;
/** v2 header / minimum v3 header. */
export const headerLengthV2 = 72;
export const headerLengthV3Min = 104;

if (l1SizeBytesMax % 8 !== 0 || snapshotExtraDataMinV3 > snapshotExtraDataMax || clusterBitsMin > clusterBitsMax) {
  throw new Error('inconsistent decoder limits');
}
