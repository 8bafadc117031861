// Header damage: fields QEMU validates when it opens the image, before any check.
import { headerField } from '../layout.js';
import { getU32, getU64, orU64, resized, setU32, setU64 } from '../poke.js';
import { cannotCheck, clean, corrupt, type DamageKind } from './types.js';

/** Where the first header extension of a v3 image written by QEMU 7.2 starts (header_length 112). */
const firstExtensionAt = 112;
const featureNameTableType = 0x6803f857;
const bitmapsType = 0x23852875;
const dataFileType = 0x44415441;
/** Where a version 2 header ends and its extension area starts. */
const v2HeaderLength = 72;
const backingFileOffsetField = 8;
const backingFileSizeField = 16;
const autoclearFeaturesField = 88;

/** Rewrite the extension area from `at`: the given records (data zero-filled), then the end marker. */
function putExtensions(image: Uint8Array, at: number, records: readonly { type: number; length: number }[]): void {
  let next = at;
  for (const { type, length } of records) {
    setU32(image, next, type);
    setU32(image, next + 4, length);
    image.fill(0, next + 8, next + 8 + length);
    next += 8 + Math.ceil(length / 8) * 8;
  }
  setU64(image, next, 0n);
}

/** Store `name` at `at` in cluster 0 and point backing_file_offset/size at it. */
function putBackingName(image: Uint8Array, at: number, name: string): void {
  const bytes = new TextEncoder().encode(name);
  image.set(bytes, at);
  setU64(image, backingFileOffsetField, BigInt(at));
  setU32(image, backingFileSizeField, bytes.length);
}

export const headerKinds: readonly DamageKind[] = [
  {
    name: 'header-cluster-bits-8',
    description: 'cluster_bits = 8 (256-byte clusters, below the minimum of 9)',
    base: 'v3-c64k',
    damage: (image) => setU32(image, headerField.clusterBits, 8),
    qemu: cannotCheck(),
  },
  {
    name: 'header-cluster-bits-22',
    description: 'cluster_bits = 22 (4 MiB clusters, above the maximum of 21)',
    base: 'v3-c64k',
    damage: (image) => setU32(image, headerField.clusterBits, 22),
    qemu: cannotCheck(),
  },
  {
    name: 'header-l1-size-too-small',
    description: 'l1_size one entry short of what the virtual size needs',
    base: 'v3-c512-r8',
    damage: (image, l) => setU32(image, headerField.l1Size, l.l1Size - 1),
    qemu: cannotCheck(),
  },
  {
    name: 'header-l1-size-absurd',
    description: 'l1_size = 2^28 entries (2 GiB of L1, far past the 32 MiB limit)',
    base: 'v3-c64k',
    damage: (image) => setU32(image, headerField.l1Size, 2 ** 28),
    qemu: cannotCheck(),
  },
  {
    name: 'header-refcount-order-7',
    description: 'refcount_order = 7 (128-bit refcounts, above the maximum of 6)',
    base: 'v3-c4k-r4-lazy',
    damage: (image) => setU32(image, headerField.refcountOrder, 7),
    qemu: cannotCheck(),
  },
  {
    name: 'header-unknown-incompatible-bit',
    description: 'incompatible feature bit 5 (unknown to QEMU) is set',
    base: 'v3-c64k',
    damage: (image) => orU64(image, headerField.incompatibleFeatures, 1n << 5n),
    qemu: cannotCheck(),
  },
  {
    name: 'header-extension-past-cluster',
    description: 'the feature name table extension claims a length that runs past cluster 0',
    base: 'v3-c64k',
    damage: (image, l) => {
      if (getU32(image, firstExtensionAt) !== featureNameTableType) throw new Error('no feature table at 112');
      setU32(image, firstExtensionAt + 4, l.cs);
    },
    qemu: cannotCheck(),
  },
  {
    name: 'header-end-marker-length-past-cluster',
    description: 'the end-of-extensions marker of a version 2 image claims a length that runs past cluster 0',
    base: 'v2-c4k',
    damage: (image, l) => {
      if (getU64(image, v2HeaderLength) !== 0n) throw new Error('v2 base has header extensions');
      setU32(image, v2HeaderLength + 4, l.cs);
    },
    qemu: cannotCheck(),
    why: 'qcow2_read_extensions checks the length before it looks at the type: "Header extension too large"',
  },
  {
    name: 'header-bitmaps-extension-length-16',
    description: 'a bitmaps extension of 16 bytes (it must be 24), autoclear bit 0 clear',
    base: 'v3-c64k',
    damage: (image) => putExtensions(image, firstExtensionAt, [{ type: bitmapsType, length: 16 }]),
    qemu: cannotCheck(),
    why: 'the length is checked even when the bitmaps are ignored: "bitmaps_ext: Invalid extension length"',
  },
  {
    name: 'header-bitmaps-extension-ignored',
    description: 'a well-sized bitmaps extension (all zero) with autoclear bit 0 clear',
    base: 'v3-c4k-r1',
    damage: (image) => putExtensions(image, firstExtensionAt, [{ type: bitmapsType, length: 24 }]),
    qemu: clean,
    why: 'without autoclear bit 0 QEMU only warns that the bitmaps are inconsistent and ignores their fields',
  },
  {
    name: 'header-data-file-extension-alone',
    description: 'an external data file name extension without incompatible bit 2',
    base: 'v3-c512-r8',
    damage: (image) => putExtensions(image, firstExtensionAt, [{ type: dataFileType, length: 7 }]),
    qemu: clean,
    why: 'the name is only used when incompatible bit 2 says there is a data file',
  },
  {
    name: 'header-autoclear-data-file-raw',
    description: 'autoclear bit 1 (data-file-raw) without an external data file',
    base: 'v3-c64k',
    damage: (image) => orU64(image, autoclearFeaturesField, 1n << 1n),
    qemu: cannotCheck(),
    why: 'qcow2_do_open refuses it ("data-file-raw requires a data file"); qemu-img info opens it, check cannot',
  },
  {
    name: 'header-backing-name-empty',
    description: 'backing_file_offset points into cluster 0 but backing_file_size is 0',
    base: 'v2-c4k',
    damage: (image) => setU64(image, backingFileOffsetField, 512n),
    qemu: clean,
    why: 'an empty name is no backing file; the extension area merely ends at the offset',
  },
  {
    name: 'header-backing-name-too-long',
    description: 'a backing file name of 1024 bytes (the limit is 1023)',
    base: 'v2-c4k',
    damage: (image) => {
      setU64(image, backingFileOffsetField, 512n);
      setU32(image, backingFileSizeField, 1024);
    },
    qemu: cannotCheck(),
  },
  {
    name: 'header-backing-name-raw-probed',
    description: "a backing file name 'backing.raw' at byte 1024 of cluster 0, no backing-format extension, the raw file beside the image",
    base: 'v3-c64k',
    damage: (image) => putBackingName(image, 1024, 'backing.raw'),
    siblings: { 'backing.raw': new Uint8Array(64 * 1024).fill(0x5a) },
    qemu: clean,
    why: 'qemu-img check opens the backing file first; QEMU 7.2 probes a file without the format extension (raw here) and opens it',
  },
  {
    name: 'header-backing-name-inside-header',
    description: 'backing_file_offset 8 (the field itself) and size 16: the name starts with a NUL byte',
    base: 'v2-c4k',
    damage: (image) => {
      setU64(image, backingFileOffsetField, 8n);
      setU32(image, backingFileSizeField, 16);
    },
    qemu: clean,
    why: 'the name is a C string, empty here: no backing file; the extension area (header_length to backing_file_offset) is empty',
  },
  {
    name: 'header-backing-offset-past-cluster-0',
    description: 'backing_file_offset one cluster and 16 bytes in (past the header cluster), backing_file_size 4',
    base: 'v2-c4k',
    damage: (image) => {
      setU64(image, backingFileOffsetField, 4096n + 16n);
      setU32(image, backingFileSizeField, 4);
    },
    qemu: cannotCheck(),
    why: 'qcow2_do_open: "Invalid backing file offset" (it must lie inside cluster 0)',
  },
  {
    name: 'header-backing-name-crosses-cluster-end',
    description: 'a backing file name of 8 bytes starting 4 bytes before the end of cluster 0',
    base: 'v3-c4k-r1',
    damage: (image) => {
      setU64(image, backingFileOffsetField, 4096n - 4n);
      setU32(image, backingFileSizeField, 8);
    },
    qemu: cannotCheck(),
    why: 'qcow2_do_open: "Backing file name too long" (it must end inside cluster 0)',
  },
  {
    name: 'header-file-cut-to-40-bytes',
    description: 'the file is cut to its first 40 bytes (inside the header)',
    base: 'v2-c4k',
    damage: (image) => resized(image, 40),
    qemu: corrupt(3),
    why: 'QEMU reads past EOF as zeros: l1_table_offset 0 makes the header the L1 table, whose entry 0 (magic, version) has reserved bits and points past EOF; cluster 0 has refcount 0 (no reftable) but 2 references',
  },
  {
    name: 'header-l1-offset-unaligned',
    description: 'l1_table_offset is 512 bytes past a cluster boundary',
    base: 'v3-c64k',
    damage: (image) => setU64(image, headerField.l1TableOffset, getU64(image, headerField.l1TableOffset) + 0x200n),
    qemu: cannotCheck(),
  },
  {
    name: 'header-reftable-offset-unaligned',
    description: 'refcount_table_offset is 512 bytes past a cluster boundary',
    base: 'v3-c64k',
    damage: (image) => setU64(image, headerField.refcountTableOffset, getU64(image, headerField.refcountTableOffset) + 0x200n),
    qemu: cannotCheck(),
  },
  {
    name: 'header-reftable-past-eof',
    description: 'refcount_table_offset points 64 clusters past end of file',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, headerField.refcountTableOffset, BigInt(image.length + 64 * l.cs)),
    qemu: corrupt(11),
    why: 'the reftable reads as zeros past EOF: its own range is refused (1), 6 used clusters have refcount 0, 4 COPIED flags sit on refcount 0',
  },
];
