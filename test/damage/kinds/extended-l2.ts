// Extended-L2 damage (incompatible bit 4, 128-bit L2 entries): subcluster bitmaps
// that QEMU's check_refcounts_l2 counts as corruptions (a subcluster both
// allocated and zero, any bitmap bit on a compressed entry, allocation bits on an
// unallocated cluster), bits it ignores, the COPIED and reserved-bit checks at the
// 16-byte stride, and the cluster size it refuses to open. Base: 16 KiB clusters,
// 512-byte subclusters (see base-images.ts).
import { compressedBit, extendedL2Bit, headerField, offsetMask, zeroBit, type L2Entry, type Layout } from '../layout.js';
import { clearU64, getU64, orU64, setU32, setU64 } from '../poke.js';
import { cannotCheck, clean, copiedBit, corrupt, isCompressed, privateData, type DamageKind } from './types.js';

const base = 'v3-c16k-extl2';

/** The subcluster bitmap of an entry (the second 8 bytes of the 16). */
const bitmapAt = (entry: L2Entry): number => entry.at + 8;

/** The first active entry of a normal cluster with some subcluster allocated. */
function partialData(l: Layout): L2Entry {
  return l.findL2('normal with a partial bitmap', (e) => !isCompressed(e.raw) && (e.raw & offsetMask) !== 0n && (e.bitmap & 0xffffffffn) !== 0xffffffffn);
}

/** The first active entry with no host cluster (an unallocated cluster, perhaps with zero subclusters). */
function unallocatedSlot(l: Layout, image: Uint8Array): number {
  const table = l.l2TableOffset(0);
  for (let at = table; at < table + l.cs; at += 16) {
    if ((getU64(image, at) & offsetMask) === 0n && (getU64(image, at + 8) & 0xffffffffn) === 0n) return at;
  }
  throw new Error('base image has no unallocated cluster under L1[0]');
}

function compressedEntry(l: Layout): L2Entry {
  return l.findL2('compressed', (e) => isCompressed(e.raw));
}

/** The lowest allocated subcluster of a bitmap, as a zero-half bit. */
function zeroBitOfFirstAllocated(bitmap: bigint): bigint {
  for (let i = 0n; i < 32n; i++) if ((bitmap & (1n << i)) !== 0n) return 1n << (32n + i);
  throw new Error('no allocated subcluster');
}

export const extendedL2Kinds: readonly DamageKind[] = [
  {
    name: 'extl2-subcluster-allocated-and-zero',
    description: 'a normal extended entry marks its first allocated subcluster zero too',
    base,
    damage: (image, l) => {
      const entry = partialData(l);
      orU64(image, bitmapAt(entry), zeroBitOfFirstAllocated(entry.bitmap));
    },
    qemu: corrupt(1),
  },
  {
    name: 'extl2-compressed-with-alloc-bit',
    description: 'a compressed extended entry has allocation bit 0 set in its bitmap',
    base,
    damage: (image, l) => orU64(image, bitmapAt(compressedEntry(l)), 1n),
    qemu: corrupt(1, 1),
    why: 'check_refcounts_l2 stops at the bitmap and counts no reference for the stream, so its host cluster leaks',
  },
  {
    name: 'extl2-compressed-with-zero-bit',
    description: 'a compressed extended entry has zero bit 32 set in its bitmap',
    base,
    damage: (image, l) => orU64(image, bitmapAt(compressedEntry(l)), 1n << 32n),
    qemu: corrupt(1, 1),
    why: 'any non-zero bitmap on a compressed entry is refused, the zero half too; the stream leaks as above',
  },
  {
    name: 'extl2-unallocated-with-alloc-bits',
    description: 'an unallocated extended entry (offset 0) has allocation bits 0-3 set',
    base,
    damage: (image, l) => orU64(image, unallocatedSlot(l, image) + 8, 0xfn),
    qemu: corrupt(1),
  },
  {
    name: 'extl2-unallocated-all-zero-bits',
    description: 'an unallocated extended entry has every zero bit set (32 zero subclusters): valid',
    base,
    damage: (image, l) => setU64(image, unallocatedSlot(l, image) + 8, 0xffffffffn << 32n),
    qemu: clean,
  },
  {
    name: 'extl2-normal-no-subcluster-allocated',
    description: 'a normal extended entry has an empty bitmap (host cluster, nothing allocated): valid',
    base,
    damage: (image, l) => setU64(image, bitmapAt(partialData(l)), 0n),
    qemu: clean,
  },
  {
    name: 'extl2-zero-flag-bit0',
    description: 'a normal extended entry has bit 0 (the standard zero flag) set',
    base,
    damage: (image, l) => orU64(image, partialData(l).at, zeroBit),
    qemu: clean,
    why: 'with extended L2 bit 0 is reserved, but it is not in L2E_STD_RESERVED_MASK and qcow2_get_cluster_type ignores it',
  },
  {
    name: 'extl2-reserved-bit',
    description: 'a normal extended entry has reserved bit 57 set',
    base,
    damage: (image, l) => orU64(image, partialData(l).at, 1n << 57n),
    qemu: corrupt(1),
  },
  {
    name: 'extl2-copied-cleared-on-private',
    description: 'the private data cluster (refcount 1) of an extended entry lacks COPIED',
    base,
    damage: (image, l) => clearU64(image, privateData(l).at, copiedBit),
    qemu: corrupt(1),
  },
  {
    name: 'extl2-compressed-bit-on-normal',
    description: 'a normal extended entry with allocated subclusters gets the compressed bit',
    base,
    damage: (image, l) => orU64(image, privateData(l).at, compressedBit),
    qemu: corrupt(2, 1),
    why: 'COPIED on a compressed entry and its non-zero bitmap are one corruption each; no reference is counted, so the data cluster leaks',
  },
  {
    name: 'extl2-cluster-bits-13',
    description: 'an extended-L2 image whose cluster_bits says 8 KiB clusters (256-byte subclusters)',
    base,
    damage: (image) => setU32(image, headerField.clusterBits, 13),
    qemu: cannotCheck(),
    why: 'qcow2_do_open: "Unsupported subcluster size: 256"',
  },
  {
    name: 'extl2-feature-bit-cleared',
    description: 'incompatible bit 4 cleared: the 16-byte entries are read as standard 8-byte ones',
    base,
    damage: (image) => clearU64(image, headerField.incompatibleFeatures, extendedL2Bit),
    qemu: corrupt(17),
    why: 'each bitmap word read as an entry has reserved bits or an offset outside the file; the real entries are read at the wrong indexes',
  },
];
