// Header damage: fields QEMU validates when it opens the image, before any check.
import { headerField } from '../layout.js';
import { getU32, getU64, orU64, setU32, setU64 } from '../poke.js';
import { cannotCheck, corrupt, type DamageKind } from './types.js';

/** Where the first header extension of a v3 image written by QEMU 7.2 starts (header_length 112). */
const firstExtensionAt = 112;
const featureNameTableType = 0x6803f857;

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
