// Header extensions and the backing file name (digest §3), and the whole-cluster-0
// rewrite QEMU's qcow2_update_header does.
import { Qcow2Error, Qcow2FormatError } from '../errors.js';
import { assert } from '../assert.js';
import { autoclearBitmaps, backingFormatBytesMax, backingNameBytesMax, bitmapsExtensionBytes, headerV2Bytes } from '../limits.js';
import { decodeBitmapsExtension, type BitmapsExtension } from './bitmap-directory.js';
import { encodeHeader, type Header } from './header.js';

export const extEnd = 0x00000000;
export const extBackingFormat = 0xe2792aca;
export const extFeatureTable = 0x6803f857;
export const extBitmaps = 0x23852875;
export const extCryptoHeader = 0x0537be77;
export const extDataFile = 0x44415441;

export interface UnknownExtension {
  type: number;
  data: Uint8Array;
}

export interface HeaderExtensions {
  backingFormat?: string;
  /** Kept only while autoclear bit 0 says the bitmaps are valid, as QEMU keeps them. */
  bitmaps?: BitmapsExtension;
  /** A bitmaps extension with autoclear bit 0 clear was read: QEMU drops it by a rewrite at read-write open. */
  ignoredBitmaps?: boolean;
  /**
   * Every extension we do not interpret, re-emitted verbatim on rewrite, in
   * reverse order of reading: QEMU's qcow2_read_extensions prepends each to its
   * list (QLIST_INSERT_HEAD), so each rewrite reverses them, and so do we.
   */
  unknown: UnknownExtension[];
}

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** Parse the extension area of cluster 0 (from header_length up to backing_file_offset or cs). */
export function decodeExtensions(cluster0: Uint8Array, header: Header): HeaderExtensions {
  const cs = 2 ** header.clusterBits;
  const end = header.backingFileOffset !== 0 ? header.backingFileOffset : cs;
  const view = new DataView(cluster0.buffer, cluster0.byteOffset, cluster0.byteLength);
  const result: HeaderExtensions = { unknown: [] };
  let at = header.headerLength;
  while (at + 8 <= end) {
    const type = view.getUint32(at);
    const length = view.getUint32(at + 4);
    // QEMU's qcow2_read_extensions checks the length before the type, the end marker's too.
    if (length > end - at - 8) {
      throw new Qcow2FormatError('header extension length', length, `at most ${end - at - 8} (extension area ends at ${end})`, at + 4);
    }
    if (type === extEnd) return result;
    const data = cluster0.slice(at + 8, at + 8 + length);
    switch (type) {
      case extBackingFormat:
        if (length > backingFormatBytesMax) {
          throw new Qcow2FormatError('backing format length', length, `at most ${backingFormatBytesMax}`, at + 4);
        }
        result.backingFormat = textDecoder.decode(data);
        break;
      case extFeatureTable:
        break; // regenerated on every rewrite
      case extBitmaps:
        if (length !== bitmapsExtensionBytes) {
          throw new Qcow2FormatError('bitmaps extension length', length, `exactly ${bitmapsExtensionBytes}`, at + 4);
        }
        // Autoclear bit 0 clear: a program without bitmap support wrote the image
        // since, so QEMU ignores the bitmaps and drops the extension on rewrite.
        if ((header.autoclearFeatures & autoclearBitmaps) !== 0n) result.bitmaps = decodeBitmapsExtension(data, at + 8, cs);
        else result.ignoredBitmaps = true;
        break;
      case extCryptoHeader:
        // Reached only with crypt_method 0: decodeHeader refuses encryption before.
        throw new Qcow2FormatError('header extension type', `0x${type.toString(16)} (encryption header)`, 'only with LUKS encryption, crypt_method 2', at);
      default:
        // The data file name (extDataFile) too: QEMU keeps it but uses it only with incompatible bit 2, which decodeHeader refuses.
        // Unshifted: QEMU writes unknown extensions back in reverse order.
        result.unknown.unshift({ type, data });
    }
    at += 8 + ((length + 7) & ~7);
  }
  return result;
}

/**
 * The backing file name stored after the extensions, if any. QEMU keeps it as a
 * C string: it ends at the first NUL, and an empty name is no backing file.
 */
export function decodeBackingName(cluster0: Uint8Array, header: Header): string | undefined {
  if (header.backingFileOffset === 0 || header.backingFileSize === 0) return undefined;
  assert(header.backingFileOffset + header.backingFileSize <= cluster0.length, 'backing name validated inside cluster 0');
  const bytes = cluster0.subarray(header.backingFileOffset, header.backingFileOffset + header.backingFileSize);
  const nul = bytes.indexOf(0);
  const name = textDecoder.decode(nul < 0 ? bytes : bytes.subarray(0, nul));
  return name === '' ? undefined : name;
}

/** QEMU's feature name table: 48-byte entries (type, bit, 46-byte name). */
const featureNames: readonly [number, number, string][] = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];

function featureTable(): Uint8Array {
  const out = new Uint8Array(featureNames.length * 48);
  featureNames.forEach(([type, bit, name], i) => {
    out[i * 48] = type;
    out[i * 48 + 1] = bit;
    out.set(textEncoder.encode(name), i * 48 + 2);
  });
  return out;
}

/**
 * Rebuild cluster 0 like qcow2_update_header: struct, preserved unknown fields,
 * backing format, feature table (v3 and cs > 4096), unknown extensions,
 * end marker, then the backing file name. Updates header.backingFile* in place.
 */
export function encodeCluster0(header: Header, ext: HeaderExtensions, backingName: string | undefined): Uint8Array {
  const cs = 2 ** header.clusterBits;
  const parts: UnknownExtension[] = [];
  if (ext.backingFormat !== undefined) parts.push({ type: extBackingFormat, data: textEncoder.encode(ext.backingFormat) });
  if (header.version === 3 && cs > 4096) parts.push({ type: extFeatureTable, data: featureTable() });
  // QEMU writes the bitmaps extension here; the engine never writes an image with valid bitmaps (impl/bitmaps.ts).
  assert(ext.bitmaps === undefined, 'no header rewrite while valid bitmaps exist');
  parts.push(...ext.unknown);
  const name = backingName === undefined ? undefined : textEncoder.encode(backingName);
  if (name !== undefined && name.length > backingNameBytesMax) {
    throw new Qcow2FormatError('backing file name length', name.length, `at most ${backingNameBytesMax}`);
  }
  const structBytes = header.version === 2 ? headerV2Bytes : encodeHeader(header).length;
  let at = structBytes;
  for (const p of parts) at += 8 + ((p.data.length + 7) & ~7);
  at += 8; // end marker
  const total = at + (name?.length ?? 0);
  if (total > cs) throw new Qcow2Error('unsupported', `header, extensions and backing name need ${total} bytes, cluster has ${cs}`);
  header.backingFileOffset = name === undefined ? 0 : at;
  header.backingFileSize = name?.length ?? 0;
  const out = new Uint8Array(cs);
  const view = new DataView(out.buffer);
  const struct = encodeHeader(header);
  assert(struct.length === structBytes, 'header struct length is stable');
  out.set(struct, 0);
  at = structBytes;
  for (const p of parts) {
    view.setUint32(at, p.type);
    view.setUint32(at + 4, p.data.length);
    out.set(p.data, at + 8);
    at += 8 + ((p.data.length + 7) & ~7);
  }
  at += 8;
  if (name !== undefined) out.set(name, at);
  return out;
}
