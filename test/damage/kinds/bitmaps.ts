// Bitmap damage: the bitmaps extension, the bitmap directory, bitmap tables and
// bitmap data clusters (qcow2.txt "Bitmaps"). QEMU 7.2 loads every bitmap when
// it opens the image (qcow2_load_dirty_bitmaps), so most damage to the directory
// or to a table of a bitmap not in use stops qemu-img check before it starts;
// qcow2_check_bitmaps_refcounts then counts the directory, the tables and the
// data clusters as references.
import { getU32, getU64, setU32, setU64, toNumber } from '../poke.js';
import { cannotCheck, clean, corrupt, leaksOnly, type DamageKind } from './types.js';

const bitmapsType = 0x23852875;
const headerLengthField = 100;
const autoclearFeaturesField = 88;
/** Directory entry fields (Qcow2BitmapDirEntry). */
const entryField = { tableOffset: 0, tableSize: 8, flags: 12, type: 16, granularityBits: 17, nameSize: 18, extraDataSize: 20, name: 24 } as const;
const flagInUse = 1;

interface BitmapEntry {
  /** File offset of the directory entry. */
  readonly at: number;
  readonly tableOffset: number;
}

interface BitmapLayout {
  /** File offset of the extension's data: nb_bitmaps, reserved, directory size and offset. */
  readonly extensionAt: number;
  readonly directoryOffset: number;
  readonly directorySize: number;
  readonly entries: readonly BitmapEntry[];
}

/** Where the bitmaps are in the base image, read from its bytes. */
function bitmapLayout(image: Uint8Array): BitmapLayout {
  let at = getU32(image, headerLengthField);
  while (getU32(image, at) !== bitmapsType) {
    if (getU32(image, at) === 0) throw new Error('base image has no bitmaps extension');
    at += 8 + Math.ceil(getU32(image, at + 4) / 8) * 8;
  }
  const extensionAt = at + 8;
  const directoryOffset = toNumber(getU64(image, extensionAt + 16));
  const directorySize = toNumber(getU64(image, extensionAt + 8));
  const entries: BitmapEntry[] = [];
  for (let e = directoryOffset; e < directoryOffset + directorySize; ) {
    entries.push({ at: e, tableOffset: toNumber(getU64(image, e)) });
    const nameSize = (getU32(image, e + entryField.type) & 0xffff);
    e += Math.ceil((entryField.name + nameSize + getU32(image, e + entryField.extraDataSize)) / 8) * 8;
  }
  return { extensionAt, directoryOffset, directorySize, entries };
}

function first(image: Uint8Array): BitmapEntry & { readonly dataOffset: number } {
  const entry = bitmapLayout(image).entries[0];
  if (entry === undefined) throw new Error('base image has no bitmap');
  const dataOffset = toNumber(getU64(image, entry.tableOffset) & 0x00fffffffffffe00n);
  if (dataOffset === 0) throw new Error('the first bitmap has no data cluster');
  return { ...entry, dataOffset };
}

const base = 'v3-c4k-bitmaps';
const notOpened = 'qcow2_load_dirty_bitmaps fails at open, so qemu-img check prints no report';

export const bitmapKinds: readonly DamageKind[] = [
  {
    name: 'bitmaps-autoclear-cleared',
    description: 'autoclear bit 0 clear, as a program without bitmap support leaves it: the bitmaps are ignored',
    base,
    damage: (image) => setU64(image, autoclearFeaturesField, 0n),
    qemu: leaksOnly(5),
    why: 'the directory, both tables and both data clusters are no longer referenced (5 clusters)',
  },
  {
    name: 'bitmaps-in-use',
    description: 'the first bitmap has its in_use flag set (not closed cleanly)',
    base,
    damage: (image) => setU32(image, first(image).at + entryField.flags, getU32(image, first(image).at + entryField.flags) | flagInUse),
    qemu: clean,
    why: 'a bitmap in use is loaded as inconsistent; its clusters are still referenced',
  },
  {
    name: 'bitmaps-directory-offset-unaligned',
    description: 'bitmap_directory_offset is not cluster aligned',
    base,
    damage: (image) => setU64(image, bitmapLayout(image).extensionAt + 16, BigInt(bitmapLayout(image).directoryOffset + 8)),
    qemu: cannotCheck(),
    why: 'qcow2_read_extensions: "bitmaps_ext: invalid bitmap directory offset"',
  },
  {
    name: 'bitmaps-directory-past-eof',
    description: 'bitmap_directory_offset points past the end of the file (the directory reads as zeros)',
    base,
    damage: (image) => setU64(image, bitmapLayout(image).extensionAt + 16, 0x100000n),
    qemu: cannotCheck(),
    why: `a zero entry breaks check_dir_entry ("Bitmap '' doesn't satisfy the constraints"); ${notOpened}`,
  },
  {
    name: 'bitmaps-directory-size-long',
    description: 'bitmap_directory_size 8 bytes larger than the entries',
    base,
    damage: (image) => setU64(image, bitmapLayout(image).extensionAt + 8, BigInt(bitmapLayout(image).directorySize + 8)),
    qemu: cannotCheck(),
    why: `"Broken bitmap directory"; ${notOpened}`,
  },
  {
    name: 'bitmaps-directory-size-short',
    description: 'bitmap_directory_size 8 bytes smaller than the entries',
    base,
    damage: (image) => setU64(image, bitmapLayout(image).extensionAt + 8, BigInt(bitmapLayout(image).directorySize - 8)),
    qemu: cannotCheck(),
    why: `"Broken bitmap directory"; ${notOpened}`,
  },
  {
    name: 'bitmaps-count-high',
    description: 'nb_bitmaps one more than the directory holds',
    base,
    damage: (image) => setU32(image, bitmapLayout(image).extensionAt, bitmapLayout(image).entries.length + 1),
    qemu: cannotCheck(),
    why: `"Less bitmaps found than specified in header extension"; ${notOpened}`,
  },
  {
    name: 'bitmaps-count-low',
    description: 'nb_bitmaps one less than the directory holds',
    base,
    damage: (image) => setU32(image, bitmapLayout(image).extensionAt, bitmapLayout(image).entries.length - 1),
    qemu: cannotCheck(),
    why: `"More bitmaps found than specified in header extension"; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-offset-unaligned',
    description: 'the first bitmap table offset is not cluster aligned',
    base,
    damage: (image) => setU64(image, first(image).at + entryField.tableOffset, BigInt(first(image).tableOffset + 8)),
    qemu: cannotCheck(),
    why: `check_dir_entry fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-past-eof',
    description: 'the first bitmap table is moved past the end of the file (it reads as zeros)',
    base,
    damage: (image) => setU64(image, first(image).at + entryField.tableOffset, 0x200000n),
    qemu: corrupt(1, 2),
    why: 'a reference past EOF is a corruption; the old table and its data cluster leak',
  },
  {
    name: 'bitmaps-table-size-zero',
    description: 'the first bitmap has bitmap_table_size 0',
    base,
    damage: (image) => setU32(image, first(image).at + entryField.tableSize, 0),
    qemu: cannotCheck(),
    why: `check_dir_entry fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-size-two',
    description: 'the first bitmap table claims 2 entries (the second zero) where the disk needs 1',
    base,
    damage: (image) => {
      const entry = first(image);
      setU32(image, entry.at + entryField.tableSize, 2);
      setU64(image, entry.tableOffset + 8, 0n);
    },
    qemu: cannotCheck(),
    why: `load_bitmap_data wants exactly the table the disk needs; ${notOpened}`,
  },
  {
    name: 'bitmaps-granularity-8',
    description: 'the first bitmap has granularity_bits 8 (below the minimum of 9)',
    base,
    damage: (image) => {
      image[first(image).at + entryField.granularityBits] = 8;
    },
    qemu: cannotCheck(),
    why: `check_dir_entry fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-type-2',
    description: 'the first bitmap has type 2 (only 1, dirty tracking, exists)',
    base,
    damage: (image) => {
      image[first(image).at + entryField.type] = 2;
    },
    qemu: cannotCheck(),
    why: `check_dir_entry fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-flags-reserved',
    description: 'the first bitmap has reserved flag bit 2 set',
    base,
    damage: (image) => setU32(image, first(image).at + entryField.flags, getU32(image, first(image).at + entryField.flags) | 4),
    qemu: cannotCheck(),
    why: `check_dir_entry fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-extra-data',
    description: 'the first directory entry claims 8 bytes of extra data',
    base,
    damage: (image) => setU32(image, first(image).at + entryField.extraDataSize, 8),
    qemu: cannotCheck(),
    why: `"Bitmap extra data is not supported"; ${notOpened}`,
  },
  {
    name: 'bitmaps-name-size-past-directory',
    description: 'the first directory entry has name_size 1024, past the end of the directory',
    base,
    damage: (image) => {
      image[first(image).at + entryField.nameSize] = 4;
      image[first(image).at + entryField.nameSize + 1] = 0;
    },
    qemu: cannotCheck(),
    why: `"Broken bitmap directory"; ${notOpened}`,
  },
  {
    name: 'bitmaps-duplicate-name',
    description: 'both bitmaps are named bm0',
    base,
    damage: (image) => {
      const second = bitmapLayout(image).entries[1];
      if (second === undefined) throw new Error('base image has one bitmap');
      image.set(new TextEncoder().encode('bm0'), second.at + entryField.name);
    },
    qemu: cannotCheck(),
    why: `"Bitmap already exists: bm0"; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-entry-reserved',
    description: 'the first bitmap table entry has reserved bit 1 set',
    base,
    damage: (image) => setU64(image, first(image).tableOffset, BigInt(first(image).dataOffset) | 2n),
    qemu: cannotCheck(),
    why: `bitmap_table_load fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-entry-reserved-in-use',
    description: 'the first bitmap table entry has reserved bit 1 set, and the bitmap is in use',
    base,
    damage: (image) => {
      const entry = first(image);
      setU64(image, entry.tableOffset, BigInt(entry.dataOffset) | 2n);
      setU32(image, entry.at + entryField.flags, getU32(image, entry.at + entryField.flags) | flagInUse);
    },
    qemu: cannotCheck(),
    why: 'open skips the table of a bitmap in use; qcow2_check_bitmaps_refcounts cannot load it: "Check failed: Invalid argument"',
  },
  {
    name: 'bitmaps-table-entry-unaligned',
    description: 'the first bitmap table entry points 512 bytes into a cluster',
    base,
    damage: (image) => setU64(image, first(image).tableOffset, BigInt(first(image).dataOffset + 512)),
    qemu: cannotCheck(),
    why: `bitmap_table_load fails; ${notOpened}`,
  },
  {
    name: 'bitmaps-table-entry-all-ones',
    description: 'the first bitmap table entry is "all ones" (flag bit 0, no cluster) instead of its data cluster',
    base,
    damage: (image) => setU64(image, first(image).tableOffset, 1n),
    qemu: leaksOnly(1),
    why: 'a valid entry without a cluster: the old data cluster leaks',
  },
  {
    name: 'bitmaps-data-past-eof',
    description: 'the first bitmap table entry points past the end of the file',
    base,
    damage: (image) => setU64(image, first(image).tableOffset, 0x200000n),
    qemu: corrupt(1, 1),
    why: 'a reference past EOF is a corruption; the old data cluster leaks',
  },
  {
    name: 'bitmaps-data-shared-with-l2',
    description: 'the first bitmap table entry points at the active L2 table',
    base,
    damage: (image, l) => setU64(image, first(image).tableOffset, BigInt(l.l2TableOffset(0))),
    qemu: corrupt(1, 1),
    why: 'the L2 table now has two references and refcount 1; the old data cluster leaks',
  },
  {
    name: 'bitmaps-data-refcount-0',
    description: 'the first bitmap data cluster has refcount 0',
    base,
    damage: (image, l) => l.setRefcount(l.cluster(first(image).dataOffset), 0),
    qemu: corrupt(1),
  },
  {
    name: 'bitmaps-data-refcount-2',
    description: 'the first bitmap data cluster has refcount 2',
    base,
    damage: (image, l) => l.setRefcount(l.cluster(first(image).dataOffset), 2),
    qemu: leaksOnly(1),
  },
  {
    name: 'bitmaps-table-refcount-0',
    description: 'the first bitmap table cluster has refcount 0',
    base,
    damage: (image, l) => l.setRefcount(l.cluster(first(image).tableOffset), 0),
    qemu: corrupt(1),
  },
  {
    name: 'bitmaps-directory-refcount-0',
    description: 'the bitmap directory cluster has refcount 0',
    base,
    damage: (image, l) => l.setRefcount(l.cluster(bitmapLayout(image).directoryOffset), 0),
    qemu: corrupt(1),
  },
];
