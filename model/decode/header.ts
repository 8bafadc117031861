// The header (cluster 0) and its extensions, validated as QEMU's qcow2_do_open
// does (digest §2–3). Anything QEMU would refuse to open is a DecodeError.
import { u32, u64, type ByteReader } from './byte-reader.js';
import { DecodeError, toNumber } from './decode-error.js';
import * as L from './limits.js';

export const qcowMagic = 0x514649fb;
export const extensionTypes = {
  end: 0,
  backingFormat: 0xe2792aca,
  featureTable: 0x6803f857,
  bitmaps: 0x23852875,
  fullDiskEncryption: 0x0537be77,
  dataFile: 0x44415441,
} as const;

export interface HeaderExtension {
  readonly type: number;
  readonly length: number;
  /** File offset of the extension's data. */
  readonly offset: number;
}

/** The bitmaps extension's fields, as QEMU keeps them (only while autoclear bit 0 is set). */
export interface BitmapsExtension {
  readonly nbBitmaps: number;
  readonly directorySize: number;
  readonly directoryOffset: number;
}

export interface Header {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly clusterSize: number;
  readonly size: number;
  readonly cryptMethod: number;
  readonly l1Size: number;
  readonly l1TableOffset: number;
  readonly refcountTableOffset: number;
  readonly refcountTableClusters: number;
  readonly nbSnapshots: number;
  readonly snapshotsOffset: number;
  readonly incompatibleFeatures: bigint;
  readonly compatibleFeatures: bigint;
  readonly autoclearFeatures: bigint;
  readonly refcountOrder: number;
  readonly headerLength: number;
  readonly compressionType: number;
  readonly backingFileOffset: number;
  readonly backingFileSize: number;
  readonly extensions: readonly HeaderExtension[];
  /** Undefined when there is no bitmaps extension or autoclear bit 0 is clear (QEMU ignores it then). */
  readonly bitmaps: BitmapsExtension | undefined;
  readonly dirty: boolean;
  readonly corrupt: boolean;
  readonly lazyRefcounts: boolean;
}

/** Feature bits QEMU's qcow2_do_open acts on. */
const incompatibleDataFile = 1n << 2n;
const autoclearBitmaps = 1n << 0n;
const autoclearDataFileRaw = 1n << 1n;

export function decodeHeader(reader: ByteReader): Header {
  // A file shorter than the header is not refused: QEMU's block layer reads past
  // EOF as zeros, so the missing fields are 0 and are judged like any others.
  const h = reader.read(0, 112);
  if (u32(h, 0) !== qcowMagic) throw new DecodeError('magic', `0x${u32(h, 0).toString(16)}`, '0x514649fb', 0);
  const version = u32(h, 4);
  if (version !== 2 && version !== 3) throw new DecodeError('version', String(version), '2 or 3', 4);
  const clusterBits = u32(h, 20);
  if (clusterBits < L.clusterBitsMin || clusterBits > L.clusterBitsMax) {
    throw new DecodeError('cluster_bits', String(clusterBits), `${L.clusterBitsMin}..${L.clusterBitsMax}`, 20);
  }
  const clusterSize = 2 ** clusterBits;
  const v3 = version === 3;
  const headerLength = v3 ? u32(h, 100) : L.headerLengthV2;
  if (v3 && (headerLength < L.headerLengthV3Min || headerLength > clusterSize)) {
    throw new DecodeError('header_length', String(headerLength), `${L.headerLengthV3Min}..cluster size ${clusterSize}`, 100);
  }
  const incompatibleFeatures = v3 ? u64(h, 72) : 0n;
  const unknown = incompatibleFeatures & ~L.incompatibleKnownMask;
  if (unknown !== 0n) throw new DecodeError('incompatible_features', `0x${incompatibleFeatures.toString(16)}`, 'only bits 0 (dirty), 1 (corrupt) and 3 (compression type) supported', 72);
  const autoclearFeatures = v3 ? u64(h, 88) : 0n;
  // qcow2_do_open: "data-file-raw requires a data file" (qemu-img check cannot open it).
  if ((autoclearFeatures & autoclearDataFileRaw) !== 0n && (incompatibleFeatures & incompatibleDataFile) === 0n) {
    throw new DecodeError('autoclear_features', `0x${autoclearFeatures.toString(16)}`, 'bit 1 (data-file-raw) only with an external data file', 88);
  }
  const refcountOrder = v3 ? u32(h, 96) : 4;
  if (refcountOrder > L.refcountOrderMax) throw new DecodeError('refcount_order', String(refcountOrder), `<= ${L.refcountOrderMax}`, 96);
  const cryptMethod = u32(h, 32);
  if (cryptMethod !== 0) throw new DecodeError('crypt_method', String(cryptMethod), '0 (encryption not supported)', 32);
  const compressionType = v3 && headerLength > 104 ? h[104] ?? 0 : 0;
  // validate_compression_type: a known type, and bit 3 set exactly when it is not zlib.
  if (compressionType > L.compressionTypeMax) throw new DecodeError('compression_type', String(compressionType), '0 (zlib) or 1 (zstd)', 104);
  if (((incompatibleFeatures & L.incompatibleCompression) !== 0n) !== (compressionType !== 0)) {
    throw new DecodeError('incompatible_features bit 3', `0x${incompatibleFeatures.toString(16)}`, `set exactly when compression_type (${compressionType}) is not zlib`, 72);
  }
  const backingFileOffset = toNumber(u64(h, 8), 'backing_file_offset', 8);
  const backingFileSize = u32(h, 16);
  // qcow2_do_open: the name must start in cluster 0, and it is a C string, so
  // one that is empty or starts with NUL means no backing file at all.
  if (backingFileOffset > clusterSize) throw new DecodeError('backing_file_offset', String(backingFileOffset), `<= cluster size ${clusterSize}`, 8);
  const nameMax = Math.min(L.backingFileNameMax, clusterSize - backingFileOffset);
  if (backingFileOffset !== 0 && backingFileSize > nameMax) throw new DecodeError('backing_file_size', String(backingFileSize), `<= ${nameMax}`, 16);
  if (backingFileOffset !== 0 && backingFileSize !== 0 && reader.read(backingFileOffset, 1)[0] !== 0) {
    throw new DecodeError('backing file name', `${backingFileSize} bytes at ${backingFileOffset}`, 'empty (backing files not supported)', 8);
  }
  const size = toNumber(u64(h, 24), 'size', 24);
  const l1Size = u32(h, 36);
  const l1Coverage = clusterSize * (clusterSize / 8);
  if (l1Size > L.l1SizeBytesMax / 8) throw new DecodeError('l1_size', String(l1Size), `<= ${L.l1SizeBytesMax / 8} entries`, 36);
  if (l1Size < Math.ceil(size / l1Coverage)) {
    throw new DecodeError('l1_size', String(l1Size), `>= ${Math.ceil(size / l1Coverage)} entries for size ${size}`, 36);
  }
  const header = {
    version,
    clusterBits,
    clusterSize,
    size,
    cryptMethod,
    l1Size,
    l1TableOffset: alignedOffset(u64(h, 40), 'l1_table_offset', 40, clusterSize),
    refcountTableOffset: alignedOffset(u64(h, 48), 'refcount_table_offset', 48, clusterSize),
    refcountTableClusters: u32(h, 56),
    nbSnapshots: u32(h, 60),
    snapshotsOffset: toNumber(u64(h, 64), 'snapshots_offset', 64),
    incompatibleFeatures,
    compatibleFeatures: v3 ? u64(h, 80) : 0n,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    backingFileOffset,
    backingFileSize,
    dirty: (incompatibleFeatures & 1n) !== 0n,
    corrupt: (incompatibleFeatures & 2n) !== 0n,
    lazyRefcounts: v3 && (u64(h, 80) & 1n) !== 0n,
  } as const;
  if (header.refcountTableClusters * clusterSize > L.reftableSizeBytesMax) {
    throw new DecodeError('refcount_table_clusters', String(header.refcountTableClusters), `<= ${L.reftableSizeBytesMax} bytes`, 56);
  }
  const extensionsEnd = backingFileOffset !== 0 ? backingFileOffset : clusterSize;
  return { ...header, ...decodeExtensions(reader, headerLength, extensionsEnd, header) };
}

function alignedOffset(value: bigint, field: string, at: number, clusterSize: number): number {
  const n = toNumber(value, field, at);
  if (n % clusterSize !== 0) throw new DecodeError(field, String(n), `aligned to cluster size ${clusterSize}`, at);
  return n;
}

/**
 * qcow2_read_extensions: type/length records padded to 8 bytes, up to type 0 or
 * `end` (backing_file_offset, else the end of cluster 0). As in QEMU, every
 * record, the end marker included, must fit before `end` ("Header extension too large").
 */
function decodeExtensions(
  reader: ByteReader,
  start: number,
  end: number,
  h: Pick<Header, 'clusterSize' | 'autoclearFeatures'>,
): Pick<Header, 'extensions' | 'bitmaps'> {
  const out: HeaderExtension[] = [];
  // As in QEMU, a later bitmaps extension replaces an earlier one.
  let bitmaps: BitmapsExtension | undefined;
  for (let at = start; at < end; ) {
    const record = reader.read(at, 8);
    const type = u32(record, 0);
    const length = u32(record, 4);
    if (at + 8 > end || length > end - (at + 8)) {
      throw new DecodeError('header extension length', String(length), `record within the extension area ending at ${end}`, at + 4);
    }
    if (type === extensionTypes.end) break;
    if (type === extensionTypes.backingFormat && length > L.backingFormatMax) {
      throw new DecodeError('backing format extension length', String(length), `<= ${L.backingFormatMax}`, at + 4);
    }
    // QEMU accepts it only with crypt_method 2 (LUKS), which this decoder refuses.
    if (type === extensionTypes.fullDiskEncryption) throw new DecodeError('header extension type', `0x${type.toString(16)}`, 'no encryption header', at);
    if (type === extensionTypes.bitmaps) bitmaps = checkBitmapsExtension(reader, at + 8, length, h) ?? bitmaps;
    out.push({ type, length, offset: at + 8 });
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return { extensions: out, bitmaps };
}

/**
 * The open-time checks of qcow2_read_extensions on the bitmaps extension: its
 * length always, its fields only when autoclear bit 0 says the bitmaps are
 * valid (otherwise QEMU ignores them). The bitmap directory is read by bitmaps.ts.
 */
function checkBitmapsExtension(reader: ByteReader, at: number, length: number, h: Pick<Header, 'clusterSize' | 'autoclearFeatures'>): BitmapsExtension | undefined {
  if (length !== L.bitmapsExtensionBytes) throw new DecodeError('bitmaps extension length', String(length), `= ${L.bitmapsExtensionBytes}`, at - 4);
  if ((h.autoclearFeatures & autoclearBitmaps) === 0n) return undefined;
  const data = reader.read(at, length);
  const reserved = u32(data, 4);
  if (reserved !== 0) throw new DecodeError('bitmaps extension reserved', String(reserved), '0', at + 4);
  const nbBitmaps = u32(data, 0);
  if (nbBitmaps < 1 || nbBitmaps > L.bitmapsCountMax) throw new DecodeError('nb_bitmaps', String(nbBitmaps), `1..${L.bitmapsCountMax}`, at);
  const directorySize = u64(data, 8);
  if (directorySize > BigInt(L.bitmapDirectoryBytesMax)) throw new DecodeError('bitmap_directory_size', String(directorySize), `<= ${L.bitmapDirectoryBytesMax}`, at + 8);
  const directoryOffset = u64(data, 16);
  if (directoryOffset % BigInt(h.clusterSize) !== 0n) {
    throw new DecodeError('bitmap_directory_offset', String(directoryOffset), `aligned to cluster size ${h.clusterSize}`, at + 16);
  }
  return { nbBitmaps, directorySize: Number(directorySize), directoryOffset: toNumber(directoryOffset, 'bitmap_directory_offset', at + 16) };
}
