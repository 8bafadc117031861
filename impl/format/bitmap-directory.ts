// Persistent dirty bitmaps (qcow2.txt "Bitmaps"): the bitmaps header extension
// and the bitmap directory, decoded and validated as QEMU's qcow2_read_extensions
// and bitmap_list_load / check_dir_entry do. The engine does not write bitmaps;
// impl/bitmaps.ts decides what an open does with them.
import { Qcow2FormatError, toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';
import {
  bitmapDataBytesMax,
  bitmapDirectoryBytesMax,
  bitmapDirEntryFixedBytes,
  bitmapGranularityBitsMax,
  bitmapGranularityBitsMin,
  bitmapNameBytesMax,
  bitmapsCountMax,
  bitmapsExtensionBytes,
  bitmapTableEntriesMax,
} from '../limits.js';

/** The bitmaps extension's data: where the directory is and how many entries it has. */
export interface BitmapsExtension {
  nbBitmaps: number;
  directorySize: number;
  directoryOffset: number;
}

export interface BitmapDirectoryEntry {
  name: string;
  tableOffset: number;
  /** Entries (u64) of the bitmap table. */
  tableSize: number;
  granularityBits: number;
  /** BME_FLAG_IN_USE: not stored cleanly; QEMU loads it as inconsistent. */
  inUse: boolean;
  /** BME_FLAG_AUTO: enabled (tracks writes). */
  auto: boolean;
}

const flagInUse = 1 << 0;
const flagAuto = 1 << 1;
const flagsReservedMask = 0xfffffffc;
/** BT_DIRTY_TRACKING_BITMAP, the only type. */
const typeDirtyTracking = 1;

/**
 * Decode the extension's 24 data bytes at file offset `at` (qcow2_read_extensions,
 * run only while autoclear bit 0 says the bitmaps are valid).
 * @throws Qcow2FormatError: reserved field set, count 0 or over QCOW2_MAX_BITMAPS,
 *   directory over QCOW2_MAX_BITMAP_DIRECTORY_SIZE or not cluster aligned.
 */
export function decodeBitmapsExtension(data: Uint8Array, at: number, clusterSize: number): BitmapsExtension {
  assert(data.length === bitmapsExtensionBytes, 'the extension length was checked by decodeExtensions');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const nbBitmaps = view.getUint32(0);
  if (view.getUint32(4) !== 0) throw new Qcow2FormatError('bitmaps extension reserved field', view.getUint32(4), 'must be 0', at + 4);
  if (nbBitmaps < 1 || nbBitmaps > bitmapsCountMax) throw new Qcow2FormatError('nb_bitmaps', nbBitmaps, `1..${bitmapsCountMax}`, at);
  const size = view.getBigUint64(8);
  if (size > BigInt(bitmapDirectoryBytesMax)) throw new Qcow2FormatError('bitmap_directory_size', size, `at most ${bitmapDirectoryBytesMax}`, at + 8);
  const directoryOffset = toSafeNumber(view.getBigUint64(16), 'bitmap_directory_offset', at + 16);
  if (directoryOffset % clusterSize !== 0) {
    throw new Qcow2FormatError('bitmap_directory_offset', directoryOffset, `a multiple of the cluster size ${clusterSize}`, at + 16);
  }
  return { nbBitmaps, directorySize: Number(size), directoryOffset };
}

/**
 * Decode the directory (`dir`: directorySize bytes read at directoryOffset) like
 * bitmap_list_load: entries 8-byte aligned, exactly nbBitmaps of them filling
 * the directory, no extra data, each within check_dir_entry's limits for a disk
 * of `diskBytes` (the virtual size in whole sectors).
 * @throws Qcow2FormatError naming the entry's field and file offset.
 */
export function decodeBitmapDirectory(dir: Uint8Array, ext: BitmapsExtension, clusterSize: number, diskBytes: number): BitmapDirectoryEntry[] {
  assert(dir.length === ext.directorySize, 'the whole directory was read');
  if (dir.length === 0) throw new Qcow2FormatError('bitmap_directory_size', 0, 'at least one entry', ext.directoryOffset);
  const view = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const entries: BitmapDirectoryEntry[] = [];
  let at = 0;
  while (at < dir.length) {
    const fileAt = ext.directoryOffset + at;
    if (entries.length === ext.nbBitmaps) throw new Qcow2FormatError('nb_bitmaps', ext.nbBitmaps, 'the directory holds more entries', fileAt);
    if (at + bitmapDirEntryFixedBytes > dir.length) throw new Qcow2FormatError('bitmap directory entry', `${dir.length - at} bytes`, `at least ${bitmapDirEntryFixedBytes}`, fileAt);
    const nameSize = view.getUint16(at + 18);
    const extraDataSize = view.getUint32(at + 20);
    const next = at + Math.ceil((bitmapDirEntryFixedBytes + nameSize + extraDataSize) / 8) * 8;
    if (next > dir.length) throw new Qcow2FormatError('bitmap directory entry size', next - at, `at most the ${dir.length - at} bytes left in the directory`, fileAt);
    if (extraDataSize !== 0) throw new Qcow2FormatError('bitmap extra_data_size', extraDataSize, 'must be 0', fileAt + 20);
    entries.push(decodeEntry(dir.subarray(at, next), fileAt, clusterSize, diskBytes));
    at = next;
  }
  if (entries.length !== ext.nbBitmaps) throw new Qcow2FormatError('nb_bitmaps', ext.nbBitmaps, `the directory holds ${entries.length} entries`, ext.directoryOffset);
  return entries;
}

/** check_dir_entry on one entry (its bytes, fixed part first). */
function decodeEntry(entry: Uint8Array, fileAt: number, clusterSize: number, diskBytes: number): BitmapDirectoryEntry {
  const view = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  const nameSize = view.getUint16(18);
  const nameBytes = entry.subarray(bitmapDirEntryFixedBytes, bitmapDirEntryFixedBytes + nameSize);
  const nul = nameBytes.indexOf(0); // QEMU copies the name as a C string
  const name = new TextDecoder().decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul));
  const bad = (field: string, value: number | string, limit: string, offset: number) =>
    new Qcow2FormatError(`bitmap '${name}' ${field}`, value, limit, fileAt + offset);
  const tableOffset = toSafeNumber(view.getBigUint64(0), `bitmap '${name}' bitmap_table_offset`, fileAt);
  const tableSize = view.getUint32(8);
  const flags = view.getUint32(12);
  const granularityBits = view.getUint8(17);
  if (tableOffset === 0 || tableOffset % clusterSize !== 0) throw bad('bitmap_table_offset', tableOffset, `non-zero, a multiple of ${clusterSize}`, 0);
  if (tableSize === 0 || tableSize > bitmapTableEntriesMax) throw bad('bitmap_table_size', tableSize, `1..${bitmapTableEntriesMax}`, 8);
  if ((flags & flagsReservedMask) !== 0) throw bad('flags', `0x${flags.toString(16)}`, 'reserved bits must be 0', 12);
  if (view.getUint8(16) !== typeDirtyTracking) throw bad('type', view.getUint8(16), `${typeDirtyTracking} (dirty tracking)`, 16);
  if (granularityBits < bitmapGranularityBitsMin || granularityBits > bitmapGranularityBitsMax) {
    throw bad('granularity_bits', granularityBits, `${bitmapGranularityBitsMin}..${bitmapGranularityBitsMax}`, 17);
  }
  if (nameSize > bitmapNameBytesMax) throw bad('name_size', nameSize, `at most ${bitmapNameBytesMax}`, 18);
  const dataBytes = tableSize * clusterSize;
  if (dataBytes > bitmapDataBytesMax) throw bad('bitmap_table_size', tableSize, `at most ${bitmapDataBytesMax} bytes of bitmap data`, 8);
  const inUse = (flags & flagInUse) !== 0;
  // A bitmap in use may be stale in size too; a valid one must cover the disk.
  if (!inUse && BigInt(diskBytes) > (BigInt(dataBytes) * 8n) << BigInt(granularityBits)) {
    throw bad('bitmap_table_size', tableSize, `enough clusters for a disk of ${diskBytes} bytes`, 8);
  }
  return { name, tableOffset, tableSize, granularityBits, inUse, auto: (flags & flagAuto) !== 0 };
}
