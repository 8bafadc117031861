// The one place that orders metadata writes (style.md §6). Each phase ends with a
// barrier (BlockFile.flush) so that a crash between any two writes leaves at worst
// leaked clusters, never a reference to an uncounted or unwritten cluster:
//   1. refcount blocks, then reftable entries, then the header's reftable fields
//      (blocks are written with every undurable drop still counted, so they hold
//      only increments: a cluster is counted before it is referenced);
//   2. L2 tables (they reference clusters counted in phase 1);
//   3. the active L1 (it references L2 tables written in phase 2);
//   4. the header (it references the L1 and the snapshot table);
//   5. the true counts of the blocks with drops, now that nothing on disk
//      references the dropped clusters; only then may a freed cluster be handed
//      out again (Refcounts.allocate flushes first when it would take one sooner).
// Guest data and new snapshot tables / L1 copies are written before phase 1 by the
// operations themselves, into clusters nothing on disk references yet.
import type { ImageState } from './state.js';
import { encodeCluster0 } from './format/header-extensions.js';
import { encodeHeader } from './format/header.js';
import { headerV2Bytes, headerV3Bytes, incompatDirty } from './limits.js';
import { forgetFreedCompressedBytes } from './compressed-alloc.js';

/** Each phase writes only what changed; with nothing changed a flush writes nothing. */
export async function flushMetadata(s: ImageState): Promise<void> {
  await s.refcounts.writeIncrements();
  await s.map.writeL2Tables();
  await s.map.writeL1();
  if (s.headerDirty) await writeHeader(s);
  await forgetFreedCompressedBytes(s);
  await s.refcounts.writeDecrements();
}

/**
 * Write the header from the in-memory state. With s.headerRebuild, cluster 0 is
 * rebuilt whole (qcow2_update_header: struct, extensions, backing name).
 * Otherwise only the version 2 fields are written, which is where every field
 * QEMU updates in place lives (size, l1_size/l1_table_offset, the reftable
 * fields, nb_snapshots/snapshots_offset): header_length, unknown fields and
 * the extensions stay exactly as they are on disk, as QEMU leaves them.
 */
export async function writeHeader(s: ImageState): Promise<void> {
  syncHeader(s);
  if (s.headerRebuild) {
    const cluster0 = encodeCluster0(s.header, s.ext, s.backingName);
    s.header.headerLength = s.header.version === 2 ? headerV2Bytes : headerV3Bytes + s.header.unknownFields.length;
    await s.file.pwrite(0, cluster0);
  } else {
    await s.file.pwrite(0, encodeHeader(s.header).subarray(0, headerV2Bytes));
  }
  await s.file.flush();
  s.headerDirty = false;
  s.headerRebuild = false;
}

export function syncHeader(s: ImageState): void {
  s.header.l1Size = s.map.l1.size;
  s.header.l1TableOffset = s.map.l1Offset;
  s.header.refcountTableOffset = s.refcounts.reftableOffset;
  s.header.refcountTableClusters = s.refcounts.reftableClusters;
  s.header.nbSnapshots = s.snapshots.length;
}

/** Lazy refcounts: set the dirty bit on disk before the first L2 update (qcow2_mark_dirty). */
export async function markDirtyBit(s: ImageState): Promise<void> {
  if (!s.lazyRefcounts || (s.header.incompatibleFeatures & incompatDirty) !== 0n) return;
  s.header.incompatibleFeatures |= incompatDirty;
  const field = new Uint8Array(8);
  new DataView(field.buffer).setBigUint64(0, s.header.incompatibleFeatures);
  await s.file.pwrite(72, field);
  await s.file.flush();
}
