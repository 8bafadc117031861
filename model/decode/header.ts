// The header (cluster 0) and its extensions, validated as QEMU's qcow2_do_open
// does (digest §2–3). Anything QEMU would refuse to open is a DecodeError.
import { u32, u64, type ByteReader } from './byte-reader.js';
import { DecodeError, toNumber } from './decode-error.js';
import { extendedL2ClusterBitsMin, l2EntryBytes, subclustersPerCluster } from './extended-l2.js';
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
  /** Table offsets as stored (QEMU accepts any aligned offset up to INT64_MAX less the table; past the end of the file reads as zeros). */
  readonly l1TableOffset: bigint;
  readonly refcountTableOffset: bigint;
  readonly refcountTableClusters: number;
  readonly nbSnapshots: number;
  readonly snapshotsOffset: bigint;
  readonly incompatibleFeatures: bigint;
  readonly compatibleFeatures: bigint;
  readonly autoclearFeatures: bigint;
  readonly refcountOrder: number;
  readonly headerLength: number;
  readonly compressionType: number;
  readonly backingFileOffset: number;
  readonly backingFileSize: number;
  /**
   * The backing file name, read as QEMU keeps it: a C string, so it ends at the
   * first NUL and an empty one (or one starting with NUL) is no backing file.
   * The checker judges the image alone; opening the name is the caller's job.
   */
  readonly backingFile: string | undefined;
  /** The backing-format extension (up to its first NUL), if any. */
  readonly backingFormat: string | undefined;
  readonly extensions: readonly HeaderExtension[];
  /** Undefined when there is no bitmaps extension or autoclear bit 0 is clear (QEMU ignores it then). */
  readonly bitmaps: BitmapsExtension | undefined;
  readonly dirty: boolean;
  readonly corrupt: boolean;
  readonly lazyRefcounts: boolean;
  /** Incompatible bit 4: 128-bit L2 entries with 32 subclusters each (extended-l2.ts). */
  readonly extendedL2: boolean;
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
  if (v3 && headerLength < L.headerLengthV3Min) {
    // QEMU's words; a file shorter than the header reads header_length as 0.
    if (reader.size < L.headerLengthV3Min) {
      throw new DecodeError('header_length', `the file has only ${reader.size} bytes`, `at least ${L.headerLengthV3Min}`, undefined, 'qcow2 header too short');
    }
    throw new DecodeError('header_length', String(headerLength), `at least ${L.headerLengthV3Min}`, 100, 'qcow2 header too short: header_length');
  }
  if (v3 && headerLength > clusterSize) throw new DecodeError('header_length', String(headerLength), `at most ${clusterSize} (cluster size)`, 100);
  const incompatibleFeatures = v3 ? u64(h, 72) : 0n;
  const unknown = incompatibleFeatures & ~L.incompatibleKnownMask;
  if (unknown !== 0n) {
    const names = featureNames(reader, headerLength, clusterSize);
    throw new DecodeError('incompatible_features', `0x${incompatibleFeatures.toString(16)}`, `${bitNames(unknown, names)}; supported: ${bitNames(L.incompatibleKnownMask, names)}`, 72, 'unsupported incompatible_features');
  }
  const autoclearFeatures = v3 ? u64(h, 88) : 0n;
  // qcow2_do_open: "data-file-raw requires a data file" (qemu-img check cannot open it).
  if ((autoclearFeatures & autoclearDataFileRaw) !== 0n && (incompatibleFeatures & incompatibleDataFile) === 0n) {
    throw new DecodeError('autoclear_features', `0x${autoclearFeatures.toString(16)}`, 'raw external data (bit 1) only with an external data file', 88);
  }
  const extendedL2 = (incompatibleFeatures & L.incompatibleExtendedL2) !== 0n;
  // qcow2_do_open: subclusters of at least 512 bytes.
  if (extendedL2 && clusterBits < extendedL2ClusterBitsMin) {
    const subclusterSize = clusterSize / subclustersPerCluster;
    throw new DecodeError('cluster_bits', String(clusterBits), `at least ${extendedL2ClusterBitsMin} with extended L2 entries: subcluster size ${subclusterSize} is under 512`, 20);
  }
  const refcountOrder = v3 ? u32(h, 96) : 4;
  if (refcountOrder > L.refcountOrderMax) throw new DecodeError('refcount_order', String(refcountOrder), `0..${L.refcountOrderMax}`, 96);
  const cryptMethod = u32(h, 32);
  if (cryptMethod !== 0) throw new DecodeError('crypt_method', String(cryptMethod), '0: encryption is not supported', 32, 'unsupported crypt_method');
  const compressionType = v3 && headerLength > 104 ? h[104] ?? 0 : 0;
  // validate_compression_type: a known type, and bit 3 set exactly when it is not zlib.
  if (compressionType > L.compressionTypeMax) throw new DecodeError('compression_type', String(compressionType), '0 (zlib) or 1 (zstd)', 104, 'unsupported compression_type');
  if (((incompatibleFeatures & L.incompatibleCompression) !== 0n) !== (compressionType !== 0)) {
    throw new DecodeError('incompatible_features', `0x${incompatibleFeatures.toString(16)}`, `bit 3 (compression type) set exactly when compression_type (${compressionType}) is not zlib`, 72);
  }
  const backingFileOffset = toNumber(u64(h, 8), 'backing_file_offset', 8);
  const backingFileSize = u32(h, 16);
  // qcow2_do_open: the name must start in cluster 0 and end inside it, at most
  // 1023 bytes; it is read wherever it points (past the end of the file as zeros).
  if (backingFileOffset > clusterSize) throw new DecodeError('backing_file_offset', String(backingFileOffset), `at most ${clusterSize} (cluster size)`, 8);
  const nameMax = Math.min(L.backingFileNameMax, clusterSize - backingFileOffset);
  if (backingFileOffset !== 0 && backingFileSize > nameMax) throw new DecodeError('backing_file_size', String(backingFileSize), `at most ${nameMax}`, 16);
  const backingFile = backingFileOffset === 0 || backingFileSize === 0 ? undefined : cString(reader.read(backingFileOffset, backingFileSize));
  const size = toNumber(u64(h, 24), 'size', 24);
  const l1Size = u32(h, 36);
  const l1Coverage = clusterSize * (clusterSize / l2EntryBytes(extendedL2));
  if (l1Size > L.l1SizeBytesMax / 8) throw new DecodeError('l1_size', String(l1Size), `at most ${L.l1SizeBytesMax / 8} entries`, 36);
  if (l1Size < Math.ceil(size / l1Coverage)) {
    throw new DecodeError('l1_size', String(l1Size), `at least ${Math.ceil(size / l1Coverage)} entries for size ${size}`, 36);
  }
  const header = {
    version,
    clusterBits,
    clusterSize,
    size,
    cryptMethod,
    l1Size,
    l1TableOffset: tableOffset(u64(h, 40), 'l1_table_offset', 40, l1Size * 8, clusterSize),
    refcountTableOffset: tableOffset(u64(h, 48), 'refcount_table_offset', 48, u32(h, 56) * clusterSize, clusterSize),
    refcountTableClusters: u32(h, 56),
    nbSnapshots: u32(h, 60),
    snapshotsOffset: u64(h, 64),
    incompatibleFeatures,
    compatibleFeatures: v3 ? u64(h, 80) : 0n,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    backingFileOffset,
    backingFileSize,
    backingFile,
    dirty: (incompatibleFeatures & 1n) !== 0n,
    corrupt: (incompatibleFeatures & 2n) !== 0n,
    lazyRefcounts: v3 && (u64(h, 80) & 1n) !== 0n,
    extendedL2,
  } as const;
  if (header.refcountTableClusters * clusterSize > L.reftableSizeBytesMax) {
    throw new DecodeError('refcount_table_clusters', String(header.refcountTableClusters), `at most ${L.reftableSizeBytesMax / clusterSize} clusters`, 56);
  }
  const extensionsEnd = backingFileOffset !== 0 ? backingFileOffset : clusterSize;
  const extensions = decodeExtensions(reader, headerLength, extensionsEnd, header);
  // As in QEMU, the last backing-format extension wins.
  const format = extensions.extensions.filter((e) => e.type === extensionTypes.backingFormat).at(-1);
  const backingFormat = format === undefined ? undefined : cString(reader.read(format.offset, format.length));
  return { ...header, ...extensions, backingFormat };
}

/** Bytes up to the first NUL as UTF-8; undefined when that is empty. */
function cString(bytes: Uint8Array): string | undefined {
  const nul = bytes.indexOf(0);
  const text = new TextDecoder().decode(nul < 0 ? bytes : bytes.subarray(0, nul));
  return text === '' ? undefined : text;
}

/** QEMU's names for the incompatible bits (its feature name table), used when the image has no table. */
const specIncompatibleNames: readonly string[] = ['dirty bit', 'corrupt bit', 'external data file', 'compression type', 'extended L2 entries'];
const featureTableEntryBytes = 48;

/**
 * Names of incompatible bits from the image's feature name table (digest §3), read
 * leniently as QEMU's first qcow2_read_extensions pass does before it reports
 * unsupported features: a malformed record ends the scan.
 */
function featureNames(reader: ByteReader, start: number, end: number): Map<number, string> {
  const names = new Map<number, string>();
  for (let at = start; at + 8 <= end; ) {
    const record = reader.read(at, 8);
    const type = u32(record, 0);
    const length = u32(record, 4);
    if (type === extensionTypes.end || length > end - at - 8) break;
    if (type === extensionTypes.featureTable) {
      const table = reader.read(at + 8, length);
      for (let e = 0; e + featureTableEntryBytes <= length; e += featureTableEntryBytes) {
        if (table[e] !== 0) continue;
        const name = new TextDecoder().decode(table.subarray(e + 2, e + featureTableEntryBytes)).replace(/\0.*$/s, '');
        names.set(table[e + 1] ?? 0, name);
      }
    }
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return names;
}

/** "name (bit N), …" for every bit of `mask`: the image's name, else the spec's, else "unknown feature". */
function bitNames(mask: bigint, names: ReadonlyMap<number, string>): string {
  const out: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask & (1n << BigInt(bit))) === 0n) continue;
    out.push(`${names.get(bit) ?? specIncompatibleNames[bit] ?? 'unknown feature'} (bit ${bit})`);
  }
  return out.join(', ');
}

const int64Max = 2n ** 63n - 1n;

/** qcow2_validate_table: an aligned offset, the table ending by INT64_MAX (the file's end does not matter). */
function tableOffset(value: bigint, field: string, at: number, tableBytes: number, clusterSize: number): bigint {
  if (value > int64Max - BigInt(tableBytes)) throw new DecodeError(field, String(value), `at most ${int64Max - BigInt(tableBytes)} (INT64_MAX less the table's ${tableBytes} bytes)`, at);
  if (value % BigInt(clusterSize) !== 0n) throw new DecodeError(field, String(value), `a multiple of the cluster size ${clusterSize}`, at);
  return value;
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
      throw new DecodeError('header extension length', String(length), `at most ${Math.max(0, end - at - 8)} (extension area ends at ${end})`, at + 4);
    }
    if (type === extensionTypes.end) break;
    if (type === extensionTypes.backingFormat && length > L.backingFormatMax) {
      throw new DecodeError('backing format length', String(length), `at most ${L.backingFormatMax}`, at + 4);
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
  if (length !== L.bitmapsExtensionBytes) throw new DecodeError('bitmaps extension length', String(length), `exactly ${L.bitmapsExtensionBytes}`, at - 4);
  if ((h.autoclearFeatures & autoclearBitmaps) === 0n) return undefined;
  const data = reader.read(at, length);
  const reserved = u32(data, 4);
  if (reserved !== 0) throw new DecodeError('bitmaps extension reserved', String(reserved), '0', at + 4);
  const nbBitmaps = u32(data, 0);
  if (nbBitmaps < 1 || nbBitmaps > L.bitmapsCountMax) throw new DecodeError('nb_bitmaps', String(nbBitmaps), `1..${L.bitmapsCountMax}`, at);
  const directorySize = u64(data, 8);
  if (directorySize > BigInt(L.bitmapDirectoryBytesMax)) throw new DecodeError('bitmap_directory_size', String(directorySize), `at most ${L.bitmapDirectoryBytesMax}`, at + 8);
  const directoryOffset = u64(data, 16);
  if (directoryOffset % BigInt(h.clusterSize) !== 0n) {
    throw new DecodeError('bitmap_directory_offset', String(directoryOffset), `aligned to cluster size ${h.clusterSize}`, at + 16);
  }
  return { nbBitmaps, directorySize: Number(directorySize), directoryOffset: toNumber(directoryOffset, 'bitmap_directory_offset', at + 16) };
}
