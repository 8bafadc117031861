// Snapshot-table damage: the table header fields and single entries.
import { headerField } from '../layout.js';
import { getU64, orU64, setU32, setU64 } from '../poke.js';
import { cannotCheck, corrupt, type DamageKind } from './types.js';

/** Offset of extra_data_size inside a snapshot table entry, and where extra data starts. */
const extraDataSizeAt = 36;
const extraDataAt = 40;

/**
 * Give snapshot entry 0 `size` bytes of extra data, moving its ID and name so the
 * entry stays well-formed apart from that size (new extra bytes are zero).
 */
function resizeExtraData(image: Uint8Array, entryAt: number, oldSize: number, size: number): void {
  const view = new DataView(image.buffer, image.byteOffset);
  const tail = view.getUint16(entryAt + 12) + view.getUint16(entryAt + 14);
  const idAndName = image.slice(entryAt + extraDataAt + oldSize, entryAt + extraDataAt + oldSize + tail);
  const extra = new Uint8Array(size);
  extra.set(image.subarray(entryAt + extraDataAt, entryAt + extraDataAt + Math.min(oldSize, size)));
  image.fill(0, entryAt + extraDataAt, entryAt + extraDataAt + Math.max(oldSize, size) + tail + 8);
  image.set(extra, entryAt + extraDataAt);
  image.set(idAndName, entryAt + extraDataAt + size);
  setU32(image, entryAt + extraDataSizeAt, size);
}

export const snapshotKinds: readonly DamageKind[] = [
  {
    name: 'snapshot-count-too-large',
    description: 'nb_snapshots = 65537 (the limit is 65536)',
    base: 'v3-c512-r8',
    damage: (image) => setU32(image, headerField.nbSnapshots, 65537),
    qemu: cannotCheck(),
    why: 'qcow2_check_read_snapshot_table fails with -EFBIG: \'Check failed\', no report, exit 1',
  },
  {
    name: 'snapshot-table-unaligned',
    description: 'snapshots_offset is 8 bytes past a cluster boundary',
    base: 'v3-c64k',
    damage: (image) => setU64(image, headerField.snapshotsOffset, getU64(image, headerField.snapshotsOffset) + 8n),
    qemu: cannotCheck(),
    why: 'snapshot table validation fails with -EINVAL: \'Check failed\', no report, exit 1',
  },
  {
    name: 'snapshot-l1-unaligned',
    description: "snapshot 1's L1 table offset is 512 bytes past a cluster boundary",
    base: 'v3-c64k',
    damage: (image, l) => setU64(image, l.snapshots[0]?.at ?? 0, getU64(image, l.snapshots[0]?.at ?? 0) + 0x200n),
    qemu: corrupt(1, 5),
    why: 'the snapshot is skipped (1): its L1, its private L2 table and data lose their only reference and shared clusters one of two (leaks 5)',
  },
  {
    name: 'snapshot-l1-offset-past-2-53',
    description: "snapshot 1's L1 table offset is 0x5146_49fb_0000_0002 (unaligned, far past 2^53)",
    base: 'v3-c64k',
    damage: (image, l) => setU64(image, l.snapshots[0]?.at ?? 0, 0x514649fb00000002n),
    qemu: corrupt(1, 5),
    why: 'the offset is only tested for alignment, never bounded: the snapshot is skipped as for any unaligned L1',
  },
  {
    name: 'snapshot-l1-size-absurd',
    description: "snapshot 1's l1_size = 2^23 entries (past the 4 Mi-entry limit)",
    base: 'v3-c64k',
    damage: (image, l) => setU32(image, (l.snapshots[0]?.at ?? 0) + 8, 2 ** 23),
    qemu: corrupt(1, 5),
    why: 'the snapshot is skipped as above',
  },
  {
    name: 'snapshot-l1-reserved-bit-no-offset',
    description: "an empty entry of snapshot 1's L1 table gets reserved bit 1 (offset still 0)",
    base: 'v3-c512-r8',
    damage: (image, l) => {
      const snapshot = l.snapshots[0];
      if (snapshot === undefined || snapshot.l1Size < 8 || getU64(image, snapshot.l1TableOffset + 8 * 7) !== 0n) throw new Error('need an empty snapshot L1 entry 7');
      orU64(image, snapshot.l1TableOffset + 8 * 7, 2n);
    },
    qemu: corrupt(12),
    why: 'check_refcounts_l1 skips only all-zero entries: the reserved bit is 1 corruption, then offset 0 is walked as an L2 table (the header read as L2 entries: reserved bits, ranges past EOF) and every cluster it names is counted once more than its refcount',
  },
  {
    name: 'snapshot-extra-data-too-small',
    description: 'a version 3 snapshot entry with extra_data_size 8 (at least 16 required)',
    base: 'v3-c64k',
    damage: (image, l) => resizeExtraData(image, l.snapshots[0]?.at ?? 0, l.snapshots[0]?.extraDataSize ?? 0, 8),
    qemu: corrupt(1),
  },
  {
    name: 'snapshot-extra-data-too-large',
    description: 'a snapshot entry with extra_data_size 1032 (the limit is 1024)',
    base: 'v3-c64k',
    damage: (image, l) => resizeExtraData(image, l.snapshots[0]?.at ?? 0, l.snapshots[0]?.extraDataSize ?? 0, 1032),
    qemu: cannotCheck(),
    why: 'reading the table fails with -EFBIG without -r all: \'Check failed\', exit 1',
  },
];
