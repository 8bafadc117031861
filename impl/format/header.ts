// The qcow2 header struct (cluster 0, digest §2): decode with validation, encode.
// Extensions and the backing file name that follow it live in header-extensions.ts.
import { Qcow2FormatError, stricterThanQemu, toSafeNumber, type FaultPolicy } from '../errors.js';
import { assert } from '../assert.js';
import {
  clusterBitsMax,
  clusterBitsMin,
  headerV2Bytes,
  headerV3Bytes,
  headerV3BytesMin,
  compressionTypeZlib,
  compressionTypeZstd,
  extendedL2ClusterBitsMin,
  incompatCompression,
  incompatExtendedL2,
  incompatSupportedMask,
  qcowMagic,
  refcountOrderMax,
  snapshotTableBytesMax,
  subclustersPerCluster,
} from '../limits.js';

export interface Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  refcountOrder: number;
  /** As read; a rewrite always writes headerV3Bytes + unknownFields.length (v3). */
  headerLength: number;
  compressionType: number;
  /** Bytes between QEMU's struct end (112) and header_length, preserved verbatim. */
  unknownFields: Uint8Array;
}

/** The feature name table extension (header-extensions.ts regenerates it on rewrite). */
const featureTableType = 0x6803f857;

/** The fixed part of a snapshot table entry: what QEMU's size check counts per snapshot. */
const snapshotEntryBytesMin = 40;

/** Bytes to read to decode the fixed part of any header. */
export const headerProbeBytes = headerV3Bytes;

function offsetField(view: DataView, at: number, field: string): number {
  return toSafeNumber(view.getBigUint64(at), field, at);
}

const int64Max = 2n ** 63n - 1n;

/**
 * Where a read-only open places a table whose offset is past 2^53: 4 PiB, past the
 * end of any real file and aligned to any cluster size, so the table reads as
 * zeros there, as it does in QEMU; its end (at most 64 MiB further) stays exact.
 */
export const tableOffsetPastAnyFile = 2 ** 52;
assert(tableOffsetPastAnyFile % 2 ** clusterBitsMax === 0 && tableOffsetPastAnyFile + 2 * snapshotTableBytesMax < Number.MAX_SAFE_INTEGER, 'a table placed past any file keeps exact offsets');

/**
 * A header table offset. QEMU's qcow2_validate_table accepts any aligned offset
 * up to INT64_MAX less the table's size, and reads past the end of the file as
 * zeros; a read-only open does the same with offsets past 2^53 (placed at
 * tableOffsetPastAnyFile), a read-write open refuses them.
 */
function tableOffsetField(view: DataView, at: number, field: string, tableBytes: number, clusterSize: number, policy: FaultPolicy): number {
  const value = view.getBigUint64(at);
  if (value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  if (policy === 'at-open') return toSafeNumber(value, field, at, stricterThanQemu);
  if (value > int64Max - BigInt(tableBytes)) throw new Qcow2FormatError(field, value, `at most ${int64Max - BigInt(tableBytes)} (INT64_MAX less the table's ${tableBytes} bytes)`, at);
  if (value % BigInt(clusterSize) !== 0n) throw new Qcow2FormatError(field, value, `a multiple of the cluster size ${clusterSize}`, at);
  return tableOffsetPastAnyFile;
}

/**
 * Check magic, version and cluster_bits (the first fields qcow2_do_open checks)
 * and return cluster_bits: what open needs to read the whole cluster 0.
 */
export function headerClusterBits(bytes: Uint8Array): number {
  assert(bytes.length >= headerV2Bytes, 'the caller reads at least the v2 header (zeros past the end of the file)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== qcowMagic) throw new Qcow2FormatError('magic', `0x${magic.toString(16)}`, `0x${qcowMagic.toString(16)}`, 0);
  const version = view.getUint32(4);
  if (version !== 2 && version !== 3) throw new Qcow2FormatError('version', version, '2 or 3', 4);
  const clusterBits = view.getUint32(20);
  if (clusterBits < clusterBitsMin || clusterBits > clusterBitsMax) {
    throw new Qcow2FormatError('cluster_bits', clusterBits, `${clusterBitsMin}..${clusterBitsMax}`, 20);
  }
  return clusterBits;
}

/**
 * Decode and validate the header from cluster 0 (read with zeros past the end of
 * the file, as QEMU reads it; `fileLength` only words the "too short" error), in
 * qcow2_do_open's order. Unsupported incompatible features are named from the
 * image's feature name table, else by the spec.
 */
export function decodeHeader(bytes: Uint8Array, fileLength = bytes.length, policy: FaultPolicy = 'at-open'): Header {
  const clusterBits = headerClusterBits(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4) as 2 | 3;
  const clusterSize = 2 ** clusterBits;
  let incompatibleFeatures = 0n;
  let compatibleFeatures = 0n;
  let autoclearFeatures = 0n;
  let refcountOrder = 4;
  let headerLength = headerV2Bytes;
  let compressionType = 0;
  let unknownFields: Uint8Array = new Uint8Array(0);
  if (version === 3) {
    assert(bytes.length >= headerV3Bytes, 'a v3 header is read whole');
    headerLength = view.getUint32(100);
    if (headerLength < headerV3BytesMin) {
      // QEMU's words; a file shorter than the header reads header_length as 0, so say the file's length instead
      if (fileLength < headerV3BytesMin) {
        throw new Qcow2FormatError('header_length', `the file has only ${fileLength} bytes`, `at least ${headerV3BytesMin}`, undefined, { summary: 'qcow2 header too short' });
      }
      throw new Qcow2FormatError('header_length', headerLength, `at least ${headerV3BytesMin}`, 100, { summary: 'qcow2 header too short: header_length' });
    }
    if (headerLength > clusterSize) throw new Qcow2FormatError('header_length', headerLength, `at most ${clusterSize} (cluster size)`, 100);
    incompatibleFeatures = view.getBigUint64(72);
    compatibleFeatures = view.getBigUint64(80);
    autoclearFeatures = view.getBigUint64(88);
    refcountOrder = view.getUint32(96);
    if (headerLength > 104) compressionType = view.getUint8(104);
    // A probe of the first 112 bytes cannot see them; open decodes cluster 0 again.
    if (headerLength > headerV3Bytes && bytes.length >= headerLength) unknownFields = bytes.slice(headerV3Bytes, headerLength);
  }
  checkFeatures(bytes, headerLength, clusterSize, incompatibleFeatures);
  if ((incompatibleFeatures & incompatExtendedL2) !== 0n && clusterBits < extendedL2ClusterBitsMin) {
    const subclusterSize = clusterSize / subclustersPerCluster;
    throw new Qcow2FormatError('cluster_bits', clusterBits, `at least ${extendedL2ClusterBitsMin} with extended L2 entries: subcluster size ${subclusterSize} is under 512`, 20);
  }
  if (refcountOrder > refcountOrderMax) throw new Qcow2FormatError('refcount_order', refcountOrder, `0..${refcountOrderMax}`, 96);
  validateCompressionType(compressionType, incompatibleFeatures);
  const cryptMethod = view.getUint32(32);
  if (cryptMethod !== 0) throw new Qcow2FormatError('crypt_method', cryptMethod, '0: encryption is not supported', 32, { summary: 'unsupported crypt_method', code: 'unsupported' });
  const backingFileOffset = offsetField(view, 8, 'backing_file_offset');
  const backingFileSize = view.getUint32(16);
  if (backingFileOffset !== 0) {
    if (backingFileOffset > clusterSize) throw new Qcow2FormatError('backing_file_offset', backingFileOffset, `at most ${clusterSize} (cluster size)`, 8);
    if (backingFileSize > Math.min(1023, clusterSize - backingFileOffset)) {
      throw new Qcow2FormatError('backing_file_size', backingFileSize, `at most ${Math.min(1023, clusterSize - backingFileOffset)}`, 16);
    }
  }
  const size = toSafeNumber(view.getBigUint64(24), 'size', 24);
  const refcountTableClusters = view.getUint32(56);
  if (refcountTableClusters === 0) throw new Qcow2FormatError('refcount_table_clusters', 0, 'at least 1', 56);
  return {
    version,
    backingFileOffset,
    backingFileSize,
    clusterBits,
    size,
    cryptMethod,
    l1Size: view.getUint32(36),
    l1TableOffset: tableOffsetField(view, 40, 'l1_table_offset', view.getUint32(36) * 8, clusterSize, policy),
    refcountTableOffset: tableOffsetField(view, 48, 'refcount_table_offset', refcountTableClusters * clusterSize, clusterSize, policy),
    refcountTableClusters,
    nbSnapshots: view.getUint32(60),
    snapshotsOffset: tableOffsetField(view, 64, 'snapshots_offset', view.getUint32(60) * snapshotEntryBytesMin, clusterSize, policy),
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    unknownFields,
  };
}

/** Incompatible bits we do not support, named. */
function checkFeatures(bytes: Uint8Array, headerLength: number, clusterSize: number, incompatible: bigint): void {
  const unsupported = incompatible & ~incompatSupportedMask;
  if (unsupported === 0n) return;
  const names = featureNames(bytes, headerLength, Math.min(clusterSize, bytes.length));
  const limit = `${bitNames(unsupported, names)}; supported: ${bitNames(incompatSupportedMask, names)}`;
  throw new Qcow2FormatError('incompatible_features', `0x${incompatible.toString(16)}`, limit, 72, { summary: 'unsupported incompatible_features', code: 'unsupported' });
}

/** QEMU's names for the incompatible bits (its feature name table), used when the image has none. */
const specIncompatibleNames: readonly string[] = ['dirty bit', 'corrupt bit', 'external data file', 'compression type', 'extended L2 entries'];
const featureTableEntryBytes = 48;
const featureNameDecoder = new TextDecoder();

/**
 * Names of incompatible bits from the image's feature name table (digest §3),
 * scanned leniently as QEMU's first qcow2_read_extensions pass does before it
 * reports unsupported features: a malformed record ends the scan.
 */
function featureNames(bytes: Uint8Array, start: number, end: number): Map<number, string> {
  const names = new Map<number, string>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = start; at + 8 <= end; ) {
    const type = view.getUint32(at);
    const length = view.getUint32(at + 4);
    if (type === 0 || length > end - at - 8) break;
    if (type === featureTableType) {
      for (let e = at + 8; e + featureTableEntryBytes <= at + 8 + length; e += featureTableEntryBytes) {
        if (bytes[e] !== 0) continue;
        names.set(bytes[e + 1] ?? 0, featureNameDecoder.decode(bytes.subarray(e + 2, e + featureTableEntryBytes)).replace(/\0.*$/s, ''));
      }
    }
    at += 8 + ((length + 7) & ~7);
  }
  return names;
}

/** "name (bit N), …" for every bit of `mask`: the image's name, else the spec's, else "unknown feature". */
function bitNames(mask: bigint, names: ReadonlyMap<number, string>): string {
  const out: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask & (1n << BigInt(bit))) !== 0n) out.push(`${names.get(bit) ?? specIncompatibleNames[bit] ?? 'unknown feature'} (bit ${bit})`);
  }
  return out.join(', ');
}

/** The struct bytes (72 for v2, 112 + preserved unknown fields for v3). */
export function encodeHeader(h: Header): Uint8Array {
  const length = h.version === 2 ? headerV2Bytes : headerV3Bytes + h.unknownFields.length;
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, qcowMagic);
  view.setUint32(4, h.version);
  view.setBigUint64(8, BigInt(h.backingFileOffset));
  view.setUint32(16, h.backingFileSize);
  view.setUint32(20, h.clusterBits);
  view.setBigUint64(24, BigInt(h.size));
  view.setUint32(32, h.cryptMethod);
  view.setUint32(36, h.l1Size);
  view.setBigUint64(40, BigInt(h.l1TableOffset));
  view.setBigUint64(48, BigInt(h.refcountTableOffset));
  view.setUint32(56, h.refcountTableClusters);
  view.setUint32(60, h.nbSnapshots);
  view.setBigUint64(64, BigInt(h.snapshotsOffset));
  if (h.version === 3) {
    view.setBigUint64(72, h.incompatibleFeatures);
    view.setBigUint64(80, h.compatibleFeatures);
    view.setBigUint64(88, h.autoclearFeatures);
    view.setUint32(96, h.refcountOrder);
    view.setUint32(100, length);
    view.setUint8(104, h.compressionType);
    out.set(h.unknownFields, headerV3Bytes);
  } else {
    assert(h.incompatibleFeatures === 0n && h.refcountOrder === 4, 'v2 has no feature bits and 16-bit refcounts');
  }
  return out;
}

/**
 * QEMU validate_compression_type: zlib (0) or zstd (1), and incompatible bit 3
 * set exactly when the type is not zlib. Errors: Qcow2Error 'unsupported' for
 * another type, Qcow2FormatError for a bit that disagrees with the field.
 */
function validateCompressionType(compressionType: number, incompatibleFeatures: bigint): void {
  if (compressionType !== compressionTypeZlib && compressionType !== compressionTypeZstd) {
    throw new Qcow2FormatError('compression_type', compressionType, '0 (zlib) or 1 (zstd)', 104, { summary: 'unsupported compression_type', code: 'unsupported' });
  }
  const bitSet = (incompatibleFeatures & incompatCompression) !== 0n;
  if (bitSet !== (compressionType !== compressionTypeZlib)) {
    throw new Qcow2FormatError('incompatible_features', `0x${incompatibleFeatures.toString(16)}`, `bit 3 (compression type) set exactly when compression_type (${compressionType}) is not zlib`, 72);
  }
}
