// The qcow2 header struct (cluster 0, digest §2): decode with validation, encode.
// Extensions and the backing file name that follow it live in header-extensions.ts.
import { Qcow2Error, Qcow2FormatError, toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';
import {
  clusterBitsMax,
  clusterBitsMin,
  headerV2Bytes,
  headerV3Bytes,
  headerV3BytesMin,
  hostOffsetMax,
  compressionTypeZlib,
  compressionTypeZstd,
  incompatCompression,
  incompatSupportedMask,
  qcowMagic,
  refcountOrderMax,
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

/** Bytes to read to decode the fixed part of any header. */
export const headerProbeBytes = headerV3Bytes;

function offsetField(view: DataView, at: number, field: string): number {
  const value = view.getBigUint64(at);
  if (value > hostOffsetMax) throw new Qcow2FormatError(field, value, `at most ${hostOffsetMax}`, at);
  return toSafeNumber(value, field, at);
}

/**
 * Decode and validate the header from the first bytes of the file (at least the
 * whole cluster 0 when header_length > 112; the caller re-reads once it knows cs).
 */
export function decodeHeader(bytes: Uint8Array): Header {
  if (bytes.length < headerV2Bytes) throw new Qcow2FormatError('file length', bytes.length, `at least ${headerV2Bytes} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== qcowMagic) throw new Qcow2FormatError('magic', `0x${magic.toString(16)}`, `0x${qcowMagic.toString(16)}`, 0);
  const version = view.getUint32(4);
  if (version !== 2 && version !== 3) throw new Qcow2FormatError('version', version, '2 or 3', 4);
  const clusterBits = view.getUint32(20);
  if (clusterBits < clusterBitsMin || clusterBits > clusterBitsMax) {
    throw new Qcow2FormatError('cluster_bits', clusterBits, `${clusterBitsMin}..${clusterBitsMax}`, 20);
  }
  const clusterSize = 2 ** clusterBits;
  let incompatibleFeatures = 0n;
  let compatibleFeatures = 0n;
  let autoclearFeatures = 0n;
  let refcountOrder = 4;
  let headerLength = headerV2Bytes;
  let compressionType = 0;
  let unknownFields: Uint8Array = new Uint8Array(0);
  if (version === 3) {
    if (bytes.length < headerV3BytesMin) throw new Qcow2FormatError('file length', bytes.length, `at least ${headerV3BytesMin}`);
    incompatibleFeatures = view.getBigUint64(72);
    compatibleFeatures = view.getBigUint64(80);
    autoclearFeatures = view.getBigUint64(88);
    refcountOrder = view.getUint32(96);
    headerLength = view.getUint32(100);
    if (headerLength < headerV3BytesMin || headerLength > clusterSize) {
      throw new Qcow2FormatError('header_length', headerLength, `${headerV3BytesMin}..${clusterSize} (cluster size)`, 100);
    }
    if (bytes.length < Math.min(headerLength, headerV3Bytes)) {
      throw new Qcow2FormatError('file length', bytes.length, `at least header_length ${headerLength}`);
    }
    if (headerLength > 104) compressionType = view.getUint8(104);
    // A probe of the first 112 bytes cannot see them; open decodes cluster 0 again.
    if (headerLength > headerV3Bytes && bytes.length >= headerLength) unknownFields = bytes.slice(headerV3Bytes, headerLength);
    if (refcountOrder > refcountOrderMax) throw new Qcow2FormatError('refcount_order', refcountOrder, `0..${refcountOrderMax}`, 96);
  }
  const unknownIncompat = incompatibleFeatures & ~incompatSupportedMask;
  if (unknownIncompat !== 0n) {
    throw new Qcow2Error('unsupported', `unsupported incompatible feature bits 0x${unknownIncompat.toString(16)} (supported: dirty, corrupt, compression type)`);
  }
  validateCompressionType(compressionType, incompatibleFeatures);
  const cryptMethod = view.getUint32(32);
  if (cryptMethod !== 0) throw new Qcow2Error('unsupported', `encrypted images are not supported (crypt_method ${cryptMethod})`);
  const backingFileOffset = offsetField(view, 8, 'backing_file_offset');
  const backingFileSize = view.getUint32(16);
  if (backingFileOffset !== 0) {
    if (backingFileOffset > clusterSize) throw new Qcow2FormatError('backing_file_offset', backingFileOffset, `at most ${clusterSize}`, 8);
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
    l1TableOffset: offsetField(view, 40, 'l1_table_offset'),
    refcountTableOffset: offsetField(view, 48, 'refcount_table_offset'),
    refcountTableClusters,
    nbSnapshots: view.getUint32(60),
    snapshotsOffset: offsetField(view, 64, 'snapshots_offset'),
    incompatibleFeatures,
    compatibleFeatures,
    autoclearFeatures,
    refcountOrder,
    headerLength,
    compressionType,
    unknownFields,
  };
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
    throw new Qcow2Error('unsupported', `unsupported compression_type ${compressionType} (0 zlib or 1 zstd)`);
  }
  const bitSet = (incompatibleFeatures & incompatCompression) !== 0n;
  if (bitSet !== (compressionType !== compressionTypeZlib)) {
    throw new Qcow2FormatError('incompatible feature bit 3 (compression type)', bitSet ? 'set' : 'clear', `set exactly when compression_type (${compressionType}) is not zlib`, 72);
  }
}
