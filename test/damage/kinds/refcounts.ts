// Refcount damage: on-disk refcounts that disagree with the references, refcount
// table entries that are malformed, refblocks that overlap other metadata.
import { headerField } from '../layout.js';
import { orU64, setU64 } from '../poke.js';
import { cannotCheck, clean, copiedBit, corrupt, grow, hostOf, l2Slot, leaksOnly, privateData, sharedData, type DamageKind } from './types.js';

export const refcountKinds: readonly DamageKind[] = [
  {
    name: 'refcount-too-low-shared-data',
    description: 'a data cluster shared with a snapshot (refcount 2) has on-disk refcount 1',
    base: 'v3-c512-r8',
    damage: (_image, l) => l.setRefcount(l.cluster(hostOf(sharedData(l).raw)), 1),
    qemu: corrupt(2),
    why: 'compare_refcounts: refcount 1 < 2 references; check_oflag_copied then sees refcount 1 without COPIED',
  },
  {
    name: 'refcount-zero-private-data',
    description: 'a private data cluster (COPIED, refcount 1) has on-disk refcount 0',
    base: 'v3-c64k',
    damage: (_image, l) => l.setRefcount(l.cluster(hostOf(privateData(l).raw)), 0),
    qemu: corrupt(2),
    why: 'refcount 0 < 1 reference (rebuild needed, counted as corruption without -r all) plus COPIED set at refcount 0',
  },
  {
    name: 'refcount-too-high-snapshot-l1',
    description: "the snapshot's L1 cluster has refcount 2 but one reference (a leak)",
    base: 'v2-c4k',
    damage: (_image, l) => l.setRefcount(l.cluster(l.snapshots[0]?.l1TableOffset ?? 0), 2),
    qemu: leaksOnly(1),
  },
  {
    name: 'refcount-orphan-cluster',
    description: 'a cluster appended to the file has refcount 1 and no reference (a leak)',
    base: 'v3-c64k',
    damage: (image, l) => {
      l.setRefcount(image.length / l.cs, 1); // the base file ends on a cluster boundary
      return grow(image, l.cs);
    },
    qemu: leaksOnly(1),
  },
  {
    name: 'refcount-r1-orphan-cluster',
    description: '1-bit refcounts: a cluster appended to the file has its refcount bit set (a leak)',
    base: 'v3-c4k-r1',
    damage: (image, l) => {
      l.setRefcount(image.length / l.cs, 1);
      return grow(image, l.cs);
    },
    qemu: leaksOnly(1),
  },
  {
    name: 'refcount-r1-zero-private-data',
    description: '1-bit refcounts: the last private data cluster has its refcount bit cleared',
    base: 'v3-c4k-r1',
    damage: (_image, l) => l.setRefcount(l.cluster(hostOf(l.l2Entries().at(-1)?.raw ?? 0n)), 0),
    qemu: corrupt(2),
  },
  {
    name: 'refcount-r64-too-low-l2',
    description: '64-bit refcounts: the second active L2 table has on-disk refcount 0',
    base: 'v3-c512-r64',
    damage: (_image, l) => l.setRefcount(l.cluster(l.l2TableOffset(1)), 0),
    qemu: corrupt(2),
  },
  {
    name: 'refcount-r64-huge-leak',
    description: '64-bit refcounts: the header cluster has refcount 2^40 (a leak)',
    base: 'v3-c512-r64',
    damage: (_image, l) => l.setRefcount(0, 2 ** 40),
    qemu: leaksOnly(1),
  },
  {
    name: 'reftable-entry-unaligned',
    description: 'refcount table entry 0 points 512 bytes into its refblock cluster',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, l.reftableOffset, l.reftableEntry(0) + 0x200n),
    qemu: cannotCheck(8, 1),
    why: 'check_refblocks counts the misalignment; compare_refcounts then cannot read any refcount of the 8 clusters in the file (8 check errors, exit 1)',
  },
  {
    name: 'reftable-entry-bit-63',
    description: 'refcount table entry 0 gets bit 63 (inside REFT_OFFSET_MASK): its refblock lies past 2^63',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => orU64(image, l.reftableOffset, 1n << 63n),
    qemu: cannotCheck(8, 1),
    why: 'check_refblocks: refblock outside the image (1); reading it fails with EIO past BDRV_MAX_LENGTH, so no refcount of the 8 clusters can be read (8 check errors); COPIED checks skip them silently',
  },
  {
    name: 'reftable-entry-reserved-bits',
    description: 'refcount table entry 0 has reserved bit 0 set',
    base: 'v3-c64k',
    damage: (image, l) => orU64(image, l.reftableOffset, 1n),
    qemu: corrupt(1, 1),
    why: 'the refblock is not counted (its refcount 1 is a leak), but refcounts are still read through the entry with the reserved bits masked off',
  },
  {
    name: 'refblock-overlaps-l2',
    description: 'refcount table entry 0 points at the active L2 table',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, l.reftableOffset, BigInt(l.l2TableOffset(0))),
    qemu: corrupt(11, 1),
    why: 'refblock counted twice (1); refcounts read from the L2 bytes: 6 clusters too low, 4 COPIED mismatches; cluster 1 reads as 8 (leak)',
  },
  {
    name: 'dirty-lazy-stale-refcounts',
    description: 'dirty bit set and an L2 entry written (lazy refcounts) whose refcount never was',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => {
      const grown = grow(image, l.cs);
      setU64(grown, l2Slot(l, grown, 3), BigInt(image.length) | copiedBit);
      orU64(grown, headerField.incompatibleFeatures, 1n);
      return grown;
    },
    qemu: corrupt(2),
    why: 'check never repairs without -r: stale refcount 0 < 1 reference, and COPIED at refcount 0',
  },
  {
    name: 'corrupt-bit-alone',
    description: 'the corrupt bit (incompatible bit 1) is set on an otherwise intact image',
    base: 'v3-c64k',
    damage: (image) => orU64(image, headerField.incompatibleFeatures, 2n),
    qemu: clean,
    why: 'check looks at structures, not at the corrupt bit',
  },
];
