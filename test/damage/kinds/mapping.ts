// Mapping damage: L1 and L2 entries with wrong COPIED flags, reserved bits,
// misaligned offsets, or host offsets that land on metadata or past the end of file.
import { zeroBit } from '../layout.js';
import { clearU64, orU64, resized, setU64 } from '../poke.js';
import { clean, copiedBit, corrupt, grow, isCompressed, l2Slot, privateData, sharedData, type DamageKind } from './types.js';

export const mappingKinds: readonly DamageKind[] = [
  {
    name: 'l1-copied-set-on-shared',
    description: 'active L1 entry of an L2 table shared with a snapshot (refcount 2) has COPIED',
    base: 'v3-c512-r8',
    damage: (image, l) => orU64(image, l.l1EntryAt(l.findL1('shared', (e) => e !== 0n && (e & copiedBit) === 0n)), copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l1-copied-cleared-on-private',
    description: 'active L1 entry of a private L2 table (refcount 1) lacks COPIED',
    base: 'v3-c512-r8',
    damage: (image, l) => clearU64(image, l.l1EntryAt(0), copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l2-copied-set-on-shared',
    description: 'L2 entry of a data cluster shared with a snapshot (refcount 2) has COPIED',
    base: 'v2-c4k',
    damage: (image, l) => orU64(image, sharedData(l).at, copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l2-copied-cleared-on-private',
    description: 'L2 entry of a private data cluster (refcount 1) lacks COPIED',
    base: 'v3-c64k',
    damage: (image, l) => clearU64(image, privateData(l).at, copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l1-reserved-high-bit',
    description: 'active L1 entry has reserved bit 60 set',
    base: 'v3-c512-r8',
    damage: (image, l) => orU64(image, l.l1EntryAt(1), 1n << 60n),
    qemu: corrupt(1),
  },
  {
    name: 'l1-reserved-low-bit',
    description: 'active L1 entry has reserved bit 0 set',
    base: 'v2-c4k',
    damage: (image, l) => orU64(image, l.l1EntryAt(0), 1n),
    qemu: corrupt(1),
  },
  {
    name: 'l2-reserved-bit',
    description: 'standard L2 entry has reserved bit 57 set',
    base: 'v3-c64k',
    damage: (image, l) => orU64(image, privateData(l).at, 1n << 57n),
    qemu: corrupt(1),
  },
  {
    name: 'l1-l2-offset-unaligned',
    description: 'active L1 entry points 512 bytes into its L2 table cluster',
    base: 'v2-c4k',
    damage: (image, l) => setU64(image, l.l1EntryAt(0), l.l1Entry(0) + 0x200n),
    qemu: corrupt(193, 1),
    why: 'the misaligned L1 entry is 1; QEMU still walks a table at 0x9200, whose last 64 entries are the 0x22-filled data cluster behind it: each has reserved bits, is unaligned and lies past EOF (3 x 64)',
  },
  {
    name: 'l2-data-offset-unaligned',
    description: 'L2 entry points 512 bytes into its data cluster',
    base: 'v2-c4k',
    damage: (image, l) => {
      const entry = privateData(l);
      setU64(image, entry.at, entry.raw + 0x200n);
    },
    qemu: corrupt(2),
    why: 'the misaligned entry is 1; its range [0xa200, 0xb200) is still counted and reaches cluster 11, which starts at EOF and has refcount 0 (compared because the in-memory table grew to cover it)',
  },
  {
    name: 'l2-two-entries-one-cluster',
    description: 'two L2 entries (both COPIED) map the same data cluster, whose refcount is 1',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => {
      const [first, second] = l.l2Entries();
      if (first === undefined || second === undefined) throw new Error('need two L2 entries');
      setU64(image, second.at, first.raw);
    },
    qemu: corrupt(1, 1),
    why: 'cluster referenced twice with refcount 1; the second entry\'s old cluster is no longer referenced (leak)',
  },
  {
    name: 'l2-into-header',
    description: 'unallocated L2 entry gets COPIED with host offset 0 (cluster 0, the header)',
    base: 'v3-c64k',
    damage: (image, l) => setU64(image, l2Slot(l, image, 5), copiedBit),
    qemu: clean,
    why: 'host offset 0 without an external data file is UNALLOCATED (qcow2_get_cluster_type), so nothing is wrong',
  },
  {
    name: 'l2-into-reftable',
    description: 'unallocated L2 entry maps the refcount table cluster (COPIED)',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, l2Slot(l, image, 3), BigInt(l.reftableOffset) | copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l2-into-l1',
    description: 'unallocated L2 entry maps the active L1 table cluster (COPIED)',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, l2Slot(l, image, 3), BigInt(l.l1Offset) | copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'l2-into-refblock',
    description: 'a private L2 entry is redirected to the refcount block cluster',
    base: 'v3-c64k',
    damage: (image, l) => setU64(image, privateData(l).at, (l.reftableEntry(0) & ~0x1ffn) | copiedBit),
    qemu: corrupt(2, 1),
    why: 'check_refblocks: refblock computed count 2; compare: refcount 1 < 2; the redirected entry\'s old cluster leaks',
  },
  {
    name: 'l2-past-eof-within-cluster',
    description: 'file grows by half a cluster; a new L2 entry maps that partial cluster (refcount 1)',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => {
      l.setRefcount(image.length / l.cs, 1);
      const grown = grow(image, l.cs / 2);
      setU64(grown, l2Slot(l, grown, 3), BigInt(image.length) | copiedBit);
      return grown;
    },
    qemu: clean,
    why: 'a range ending less than one cluster past EOF is legal (the file may end mid-cluster)',
  },
  {
    name: 'l2-past-eof-one-cluster',
    description: 'a new L2 entry maps the cluster that starts exactly at end of file',
    base: 'v3-c4k-r4-lazy',
    damage: (image, l) => setU64(image, l2Slot(l, image, 3), BigInt(image.length) | copiedBit),
    qemu: corrupt(2),
    why: 'inc_refcounts refuses a range ending one cluster or more past EOF; COPIED set at on-disk refcount 0',
  },
  {
    name: 'l2-past-eof-far',
    description: 'a private L2 entry maps a cluster 100 clusters past end of file',
    base: 'v3-c64k',
    damage: (image, l) => setU64(image, privateData(l).at, BigInt(image.length + 100 * l.cs) | copiedBit),
    qemu: corrupt(2, 1),
    why: 'as above, and the redirected entry\'s old cluster leaks',
  },
  {
    name: 'truncated-mid-last-cluster',
    description: 'the file loses the last 512 bytes of its last data cluster',
    base: 'v3-c4k-r4-lazy',
    damage: (image) => resized(image, image.length - 512),
    qemu: clean,
    why: 'the last data cluster ends less than one cluster past EOF',
  },
  {
    name: 'truncated-two-clusters',
    description: 'the file loses its last two clusters (active L2 table and a data cluster)',
    base: 'v3-c64k',
    damage: (image, l) => resized(image, image.length - 2 * l.cs),
    qemu: corrupt(1, 2),
    why: 'the active L2 table lies past EOF: its reference is refused (1) and it reads as zeros, so the clusters it shared are referenced by the snapshot only (leaks 2)',
  },
  {
    name: 'compressed-with-copied',
    description: 'a compressed L2 entry carries COPIED',
    base: 'v3-c4k-r2-compressed',
    damage: (image, l) => orU64(image, l.findL2('compressed', (e) => isCompressed(e.raw)).at, copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'v2-zero-flag',
    description: 'a version 2 L2 entry carries the ZERO flag (only v3 has it)',
    base: 'v2-c4k',
    damage: (image, l) => orU64(image, privateData(l).at, zeroBit),
    qemu: clean,
    why: 'check does not test the ZERO flag against the version; only reads treat it as corruption',
  },
];
