// Persistent dirty bitmaps at open (QEMU's qcow2_load_dirty_bitmaps). The engine
// reads them, so read-only opens agree with QEMU on which images open and what
// `info` lists, but it never updates them: a write would leave them stale, so a
// read-write open of an image with bitmaps is refused unless the caller allows
// dropping them, which is what the spec lets a program without bitmap support do
// (clear autoclear bit 0; QEMU then ignores the bitmaps and their clusters leak).
import type { TrackedFile } from './io/tracked-file.js';
import type { Header } from './format/header.js';
import type { HeaderExtensions } from './format/header-extensions.js';
import { decodeBitmapDirectory, type BitmapDirectoryEntry } from './format/bitmap-directory.js';
import { Qcow2BitmapsError, Qcow2FormatError } from './errors.js';
import { autoclearBitmaps } from './limits.js';
import { assert } from './assert.js';

/** Bitmap table entries: bits 1–8 and 56–63 reserved; bit 0 ("all ones") only without an offset. */
const tableEntryReservedMask = 0xff000000000001fen;
const tableEntryOffsetMask = 0x00fffffffffffe00n;
const tableEntryAllOnes = 1n;
/** QEMU measures a bitmap against the virtual size in whole sectors (bdrv_getlength). */
const sectorBytes = 512;
/** QEMU serializes bitmap data in 64-bit words (hbitmap_serialization_size). */
const serializationWordBytes = 8;

/**
 * The bitmaps of a valid bitmaps extension ([] without one), validated as QEMU
 * validates them when it opens the image: the directory (bitmap_list_load),
 * unique names, and for each bitmap not in use its table (bitmap_table_load)
 * and size (load_bitmap_data). The table of a bitmap in use is not read.
 * @throws Qcow2FormatError naming the field and its file offset.
 */
export async function loadBitmaps(file: TrackedFile, header: Header, ext: HeaderExtensions): Promise<BitmapDirectoryEntry[]> {
  if (ext.bitmaps === undefined) return [];
  const cs = 2 ** header.clusterBits;
  const diskBytes = Math.floor(header.size / sectorBytes) * sectorBytes;
  const dir = await file.pread(ext.bitmaps.directoryOffset, ext.bitmaps.directorySize);
  const bitmaps = decodeBitmapDirectory(dir, ext.bitmaps, cs, diskBytes);
  const names = new Set<string>();
  for (const bm of bitmaps) {
    if (names.has(bm.name)) throw new Qcow2FormatError('bitmap name', `'${bm.name}'`, 'names must be unique', ext.bitmaps.directoryOffset);
    names.add(bm.name);
    if (bm.inUse) continue;
    const expected = tableSizeFor(diskBytes, bm.granularityBits, cs);
    if (bm.tableSize !== expected) throw new Qcow2FormatError(`bitmap '${bm.name}' bitmap_table_size`, bm.tableSize, `${expected} for a disk of ${diskBytes} bytes`);
    checkTable(await file.pread(bm.tableOffset, bm.tableSize * 8), bm, cs);
  }
  return bitmaps;
}

/**
 * On a read-write open: refuse while there are bitmaps, or with `dropBitmaps`
 * mark them inconsistent as the spec allows (autoclear bit 0 cleared, the
 * extension no longer written). Returns whether the header must be rewritten.
 * @throws Qcow2BitmapsError naming the bitmaps.
 */
export function dropBitmapsForWriting(header: Header, ext: HeaderExtensions, bitmaps: readonly BitmapDirectoryEntry[], dropBitmaps: boolean): boolean {
  if (bitmaps.length === 0) return false;
  if (!dropBitmaps) throw new Qcow2BitmapsError(bitmaps.map((bm) => bm.name));
  assert(ext.bitmaps !== undefined && (header.autoclearFeatures & autoclearBitmaps) !== 0n, 'bitmaps come from a valid extension');
  header.autoclearFeatures &= ~autoclearBitmaps;
  delete ext.bitmaps;
  return true;
}

/** Clusters of bitmap data a disk of diskBytes needs (load_bitmap_data's tab_size). */
function tableSizeFor(diskBytes: number, granularityBits: number, clusterSize: number): number {
  if (diskBytes === 0) return 0;
  const bits = Math.floor((diskBytes - 1) / 2 ** granularityBits) + 1;
  const bytes = Math.ceil(bits / (serializationWordBytes * 8)) * serializationWordBytes;
  return Math.ceil(bytes / clusterSize);
}

/** check_table_entry on every entry. */
function checkTable(bytes: Uint8Array, bm: BitmapDirectoryEntry, clusterSize: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < bm.tableSize; i++) {
    const entry = view.getBigUint64(i * 8);
    const offset = entry & tableEntryOffsetMask;
    const valid = (entry & tableEntryReservedMask) === 0n && (offset === 0n || ((entry & tableEntryAllOnes) === 0n && offset % BigInt(clusterSize) === 0n));
    if (!valid) throw new Qcow2FormatError(`bitmap '${bm.name}' table entry ${i}`, `0x${entry.toString(16)}`, 'no reserved bits, a cluster-aligned offset', bm.tableOffset + i * 8);
  }
}
