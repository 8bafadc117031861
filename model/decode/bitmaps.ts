// Persistent dirty bitmaps (qcow2.txt "Bitmaps"): the bitmap directory and the
// bitmap tables, validated as QEMU 7.2 does when it opens an image
// (qcow2_load_dirty_bitmaps → bitmap_list_load, check_dir_entry, load_bitmap →
// bitmap_table_load, check_table_entry, load_bitmap_data). An image that fails
// here cannot be opened by QEMU at all, not even by qemu-img check or info.
import { u16, u32, u64, u64Table, type ByteReader } from './byte-reader.js';
import { DecodeError, toNumber } from './decode-error.js';
import type { Header } from './header.js';
import * as L from './limits.js';

export interface Bitmap {
  /** File offset of the directory entry. */
  readonly entryOffset: number;
  readonly name: string;
  readonly tableOffset: number;
  /** Entries (u64) in the bitmap table. */
  readonly tableSize: number;
  readonly granularityBits: number;
  /** BME_FLAG_IN_USE: the data is stale (the image was not closed cleanly). */
  readonly inUse: boolean;
}

const flagInUse = 1 << 0;
const flagsReservedMask = 0xfffffffc;
/** BT_DIRTY_TRACKING_BITMAP, the only bitmap type. */
const typeDirtyTracking = 1;
/** Bitmap table entries: bits 1–8 and 56–63 reserved, bit 0 "all ones" only without an offset. */
export const bitmapTableEntryReservedMask = 0xff000000000001fen;
export const bitmapTableEntryOffsetMask = 0x00fffffffffffe00n;
const bitmapTableEntryAllOnes = 1n;
/** Bytes of guest data QEMU measures a bitmap against: the size in whole sectors (bdrv_getlength). */
const sectorBytes = 512;
/** hbitmap serializes in host longs of 64 bits. */
const serializationWordBits = 64;

/** check_table_entry: false for reserved bits, "all ones" with an offset, an unaligned offset. */
export function bitmapTableEntryValid(entry: bigint, clusterSize: number): boolean {
  if ((entry & bitmapTableEntryReservedMask) !== 0n) return false;
  const offset = entry & bitmapTableEntryOffsetMask;
  if (offset === 0n) return true;
  return (entry & bitmapTableEntryAllOnes) === 0n && offset % BigInt(clusterSize) === 0n;
}

/**
 * The bitmaps QEMU loads when it opens the image: [] without a valid bitmaps
 * extension (autoclear bit 0 clear). Throws DecodeError where qcow2_do_open
 * fails: a broken directory, an entry breaking check_dir_entry, a duplicate
 * name, or (for bitmaps not in use) a bad table entry or a table of the wrong size.
 */
export function loadBitmaps(reader: ByteReader, header: Header): readonly Bitmap[] {
  const bitmaps = decodeBitmapDirectory(reader, header);
  const names = new Set<string>();
  for (const bm of bitmaps) {
    if (names.has(bm.name)) throw new DecodeError('bitmap name', `'${bm.name}'`, 'unique (bitmap already exists)', bm.entryOffset);
    names.add(bm.name);
    if (bm.inUse) continue; // load_bitmap skips the data of a bitmap in use
    const table = readBitmapTable(reader, bm);
    const bad = table.findIndex((entry) => !bitmapTableEntryValid(entry, header.clusterSize));
    if (bad >= 0) {
      throw new DecodeError(`bitmap '${bm.name}' table entry ${bad}`, `0x${(table[bad] ?? 0n).toString(16)}`, 'no reserved bits, aligned offset', bm.tableOffset + bad * 8);
    }
    const expected = bitmapTableSizeFor(header, bm.granularityBits);
    if (bm.tableSize !== expected) {
      throw new DecodeError(`bitmap '${bm.name}' bitmap_table_size`, String(bm.tableSize), `= ${expected} for the virtual size`, bm.entryOffset + 8);
    }
  }
  return bitmaps;
}

/** The table's raw entries; past EOF reads as zeros, as in QEMU. */
function readBitmapTable(reader: ByteReader, bm: Bitmap): bigint[] {
  return u64Table(reader.read(bm.tableOffset, bm.tableSize * 8), bm.tableSize);
}

/** Clusters of bitmap data QEMU needs for the virtual size (load_bitmap_data's tab_size). */
function bitmapTableSizeFor(header: Header, granularityBits: number): number {
  const length = BigInt(Math.floor(header.size / sectorBytes) * sectorBytes);
  if (length === 0n) return 0;
  const bits = (length - 1n) >> BigInt(granularityBits);
  const bytes = (bits / BigInt(serializationWordBits) + 1n) * BigInt(serializationWordBits / 8);
  return Number((bytes + BigInt(header.clusterSize) - 1n) / BigInt(header.clusterSize));
}

/** bitmap_list_load with check_dir_entry on every entry. */
function decodeBitmapDirectory(reader: ByteReader, header: Header): Bitmap[] {
  const ext = header.bitmaps;
  if (ext === undefined) return [];
  const { directoryOffset, directorySize, nbBitmaps } = ext;
  if (directorySize === 0) throw new DecodeError('bitmap_directory_size', '0', '> 0', directoryOffset);
  const dir = reader.read(directoryOffset, directorySize);
  const broken = (at: number) => new DecodeError('bitmap directory', `entry at byte ${at} of ${directorySize}`, 'entries that fill the directory exactly', directoryOffset + at);
  const out: Bitmap[] = [];
  let at = 0;
  while (at < directorySize) {
    if (at + L.bitmapDirEntryFixedBytes > directorySize) throw broken(at);
    if (out.length + 1 > nbBitmaps) throw new DecodeError('nb_bitmaps', String(nbBitmaps), `>= the directory's entries (more found)`, directoryOffset + at);
    const extraDataSize = u32(dir, at + 20);
    const next = at + Math.ceil((L.bitmapDirEntryFixedBytes + u16(dir, at + 18) + extraDataSize) / 8) * 8;
    if (next > directorySize) throw broken(at);
    if (extraDataSize !== 0) throw new DecodeError('bitmap extra_data_size', String(extraDataSize), '0 (extra data not supported)', directoryOffset + at + 20);
    out.push(checkDirEntry(dir, at, directoryOffset + at, header));
    at = next;
  }
  if (out.length !== nbBitmaps) throw new DecodeError('nb_bitmaps', String(nbBitmaps), `= the directory's ${out.length} entries (less found)`);
  return out;
}

/** check_dir_entry: every field of one entry within QEMU's limits. */
function checkDirEntry(dir: Uint8Array, at: number, entryOffset: number, header: Header): Bitmap {
  const nameSize = u16(dir, at + 18);
  const nameBytes = dir.subarray(at + L.bitmapDirEntryFixedBytes, at + L.bitmapDirEntryFixedBytes + nameSize);
  // g_strndup: the name ends at its first NUL.
  const nul = nameBytes.indexOf(0);
  const name = new TextDecoder().decode(nul < 0 ? nameBytes : nameBytes.subarray(0, nul));
  const tableOffset = u64(dir, at);
  const tableSize = u32(dir, at + 8);
  const flags = u32(dir, at + 12);
  const type = dir[at + 16] ?? 0;
  const granularityBits = dir[at + 17] ?? 0;
  const fail = (field: string, value: string | number | bigint, limit: string, offset: number) =>
    new DecodeError(`bitmap '${name}' ${field}`, String(value), limit, entryOffset + offset);
  if (tableOffset === 0n || tableOffset % BigInt(header.clusterSize) !== 0n) {
    throw fail('bitmap_table_offset', tableOffset, `non-zero, aligned to ${header.clusterSize}`, 0);
  }
  if (tableSize === 0 || tableSize > L.bitmapTableEntriesMax) throw fail('bitmap_table_size', tableSize, `1..${L.bitmapTableEntriesMax}`, 8);
  if ((flags & flagsReservedMask) !== 0) throw fail('flags', `0x${flags.toString(16)}`, 'no reserved bits', 12);
  if (type !== typeDirtyTracking) throw fail('type', type, `${typeDirtyTracking} (dirty tracking)`, 16);
  if (granularityBits < L.bitmapGranularityBitsMin || granularityBits > L.bitmapGranularityBitsMax) {
    throw fail('granularity_bits', granularityBits, `${L.bitmapGranularityBitsMin}..${L.bitmapGranularityBitsMax}`, 17);
  }
  if (nameSize > L.bitmapNameBytesMax) throw fail('name_size', nameSize, `<= ${L.bitmapNameBytesMax}`, 18);
  const dataBytes = BigInt(tableSize) * BigInt(header.clusterSize);
  if (dataBytes > BigInt(L.bitmapDataBytesMax)) throw fail('bitmap_table_size', tableSize, `<= ${L.bitmapDataBytesMax} bytes of data`, 8);
  const inUse = (flags & flagInUse) !== 0;
  const length = BigInt(Math.floor(header.size / sectorBytes) * sectorBytes);
  // A bitmap in use may be too small (it was not resized); a valid one must cover the disk.
  if (!inUse && length > (dataBytes * 8n) << BigInt(granularityBits)) {
    throw fail('bitmap_table_size', tableSize, `enough clusters for the virtual size ${length}`, 8);
  }
  return {
    entryOffset,
    name,
    tableOffset: toNumber(tableOffset, `bitmap '${name}' bitmap_table_offset`, entryOffset),
    tableSize,
    granularityBits,
    inUse,
  };
}
