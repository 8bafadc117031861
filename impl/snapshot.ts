// Internal snapshots (QEMU qcow2-snapshot.c, qcow2_update_snapshot_refcount).
// Every operation checks refcount overflow before changing anything, so a refused
// create/revert leaves no trace (QEMU 7.2 leaks a cluster there). Each starts and
// ends with a flush, so no drop is undurable while it counts (an increment never meets one).
//
// Crash order (docs/semantics.md, "Faults"): the snapshot table names a snapshot
// exactly when its counts are on disk. A refcount and the COPIED flags that must
// agree with it lie in different clusters, so no order keeps them in step; ours
// only ever leaves a flag set on a cluster one reference reaches, with its count
// still high (a leak that `check -r leaks` repairs, flag and all):
// - create: the L1 copy, the counts, then the cleared flags, then the table;
// - delete: the table without the snapshot first, then the set flags, then the counts;
// - revert: the counts of the snapshot's view, the active L1, then the old view's drops.
import type { ImageState } from './state.js';
import type { SnapshotEntry } from './format/snapshot-table.js';
import type { L2Table } from './format/l2-entry.js';
import { Qcow2Error } from './errors.js';
import { L1Table, decodeL1, encodeL1 } from './format/l1-table.js';
import { encodeSnapshotTable } from './format/snapshot-table.js';
import { compressedClusters } from './compressed.js';
import { l1SizeBytesMax, snapshotL1Fields, snapshotTableBytesMax, snapshotsCountMax, snapshotExtraDataBytesWritten, validateTable } from './limits.js';
import { flushMetadata, writeHeader } from './flush.js';
import { assert } from './assert.js';
import { resizeImage, checkResize } from './resize.js';

/** How a command names its snapshot: `qemu-img snapshot -a` takes an ID or a name, `-d` a name only. */
export type SnapshotLookup = 'id-or-name' | 'name';

/**
 * The snapshot a command means. 'id-or-name' is QEMU's
 * find_snapshot_by_id_or_name (an ID equal to `key` wins, else the first name
 * match, as qcow2_snapshot_goto looks up); 'name' is
 * find_snapshot_by_id_and_name(bs, NULL, key), the first name match (qemu-img
 * 7.2's `snapshot -d`, which calls bdrv_snapshot_delete(bs, NULL, name)).
 * Throws Qcow2Error 'unknown-snapshot' when none matches.
 */
export function findSnapshot(s: ImageState, key: string, lookup: SnapshotLookup): { index: number; entry: SnapshotEntry } {
  const byId = lookup === 'id-or-name' ? s.snapshots.findIndex((e) => e.id === key) : -1;
  const index = byId >= 0 ? byId : s.snapshots.findIndex((e) => e.name === key);
  const entry = s.snapshots[index];
  if (entry === undefined) throw new Qcow2Error('unknown-snapshot', `snapshot '${key}' not found`);
  return { index, entry };
}

/** Host clusters reached by walking an L1 (tables and the data they reference), with multiplicity. */
export async function walk(s: ImageState, l1: L1Table): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  const add = (c: number) => counts.set(c, (counts.get(c) ?? 0) + 1);
  const cs = s.g.clusterSize;
  for (const offset of l1.offsets) {
    if (offset === 0) continue;
    add(offset / cs);
    const table = await s.map.l2Cache.get(offset);
    for (let j = 0; j < s.g.l2EntriesCount; j++) {
      const e = table.get(j);
      if (e.kind === 'normal' || e.kind === 'zero-alloc') add(e.offset / cs);
      else if (e.kind === 'compressed') for (const c of compressedClusters(e.descriptor, s.g)) add(c);
    }
  }
  return counts;
}

async function checkOverflow(s: ImageState, increments: Map<number, number>): Promise<void> {
  for (const [cluster, k] of increments) {
    const now = await s.refcounts.logical(cluster);
    if (now + k > s.g.refcountMax) {
      throw new Qcow2Error('refcount-overflow', `cluster ${cluster} would get refcount ${now + k} (max ${s.g.refcountMax})`);
    }
  }
}

/** Recompute COPIED on the active L1 and its L2 tables from the live refcounts; returns how many flags changed. */
export async function syncCopied(s: ImageState): Promise<number> {
  const l1 = s.map.l1;
  const cs = s.g.clusterSize;
  let changed = 0;
  for (const [i, offset] of l1.offsets.entries()) {
    if (offset === 0) continue;
    const copied = (await s.refcounts.logical(offset / cs)) === 1 ? 1 : 0;
    if (l1.copied[i] !== copied) {
      changed++;
      l1.copied[i] = copied;
      s.map.markL1Dirty(i);
    }
    const table: L2Table = await s.map.l2Cache.get(offset);
    for (let j = 0; j < s.g.l2EntriesCount; j++) {
      const e = table.get(j);
      if (e.kind !== 'normal' && e.kind !== 'zero-alloc') continue;
      const want = (await s.refcounts.logical(e.offset / cs)) === 1;
      if (e.copied !== want) {
        changed++;
        table.set(j, { ...e, copied: want });
        s.map.l2Cache.markDirty(offset);
      }
    }
  }
  return changed;
}

/**
 * Write the whole table at a new place and point the header at it
 * (qcow2_write_snapshots): the table and its counts are durable before the
 * header write, so a crash finds the old table or the new one. The old
 * table's clusters are freed after. Throws Qcow2Error 'io' with the header
 * unchanged in memory (the new table's clusters are then a leak).
 */
async function commitSnapshotTable(s: ImageState, entries: SnapshotEntry[]): Promise<void> {
  // Only createSnapshot makes the table longer, and it checks the size limit
  // before it changes anything.
  const cs = s.g.clusterSize;
  const bytes = encodeSnapshotTable(entries, snapshotExtraDataBytesWritten);
  let offset = 0;
  if (bytes.length > 0) {
    offset = await s.refcounts.allocate(Math.ceil(bytes.length / cs));
    await s.file.pwrite(offset, bytes);
  }
  await flushMetadata(s);
  const old = { snapshots: s.snapshots, tableBytes: s.snapshotTableBytes, offset: s.header.snapshotsOffset };
  s.snapshots = entries;
  s.snapshotTableBytes = bytes.length;
  s.header.snapshotsOffset = offset;
  try {
    await writeHeader(s);
  } catch (error) {
    s.snapshots = old.snapshots;
    s.snapshotTableBytes = old.tableBytes;
    s.header.snapshotsOffset = old.offset;
    s.headerDirty = true;
    throw error;
  }
  assert(!s.headerDirty, 'the header names the new snapshot table');
  for (let c = 0; c < Math.ceil(old.tableBytes / cs); c++) await s.refcounts.decrement(old.offset / cs + c);
}

async function loadSnapshotL1(s: ImageState, e: SnapshotEntry): Promise<L1Table> {
  validateTable(e.l1TableOffset, e.l1Size, 8, l1SizeBytesMax, snapshotL1Fields(e.id), s.g.clusterSize, await s.file.length());
  return decodeL1(await s.file.pread(e.l1TableOffset, e.l1Size * 8), e.l1Size, s.g.clusterSize, e.l1TableOffset);
}

export async function createSnapshot(s: ImageState, name: string): Promise<void> {
  if (s.snapshots.length >= snapshotsCountMax) throw new Qcow2Error('unsupported', `already ${snapshotsCountMax} snapshots`);
  await flushMetadata(s);
  const increments = await walk(s, s.map.l1);
  await checkOverflow(s, increments);
  const entry = newEntry(s, name);
  const tableBytes = encodeSnapshotTable([...s.snapshots, entry], snapshotExtraDataBytesWritten).length;
  if (tableBytes > snapshotTableBytesMax) throw new Qcow2Error('unsupported', `snapshot table would need ${tableBytes} bytes (limit ${snapshotTableBytesMax})`);
  const cs = s.g.clusterSize;
  const l1 = s.map.l1;
  // The copy is written as it is in memory, COPIED bits included (they go stale).
  let copyOffset = 0;
  if (l1.size > 0) {
    copyOffset = await s.refcounts.allocate(Math.ceil((l1.size * 8) / cs));
    await s.file.pwrite(copyOffset, encodeL1(l1));
  }
  for (const [cluster, k] of increments) await s.refcounts.increment(cluster, k);
  await syncCopied(s);
  // The counts, then the cleared flags (flush phases 1 to 3), before the table names the snapshot.
  await flushMetadata(s);
  entry.l1TableOffset = copyOffset;
  await commitSnapshotTable(s, [...s.snapshots, entry]);
  await flushMetadata(s);
}

function newEntry(s: ImageState, name: string): SnapshotEntry {
  // QEMU find_new_snapshot_id: strtoul of each ID, so leading digits count ("7b" is 7).
  const maxId = s.snapshots.reduce((m, e) => Math.max(m, Number(/^\d+/.exec(e.id)?.[0] ?? 0)), 0);
  const now = s.clock();
  return {
    l1TableOffset: 0,
    l1Size: s.map.l1.size,
    id: String(maxId + 1),
    name,
    dateSec: now.sec,
    dateNsec: now.nsec,
    vmClockNsec: 0n,
    vmStateSize: 0,
    diskSize: s.header.size,
    extraData: new Uint8Array(snapshotExtraDataBytesWritten),
  };
}

export async function revertSnapshot(s: ImageState, idOrName: string): Promise<void> {
  const { entry: e } = findSnapshot(s, idOrName, 'id-or-name');
  const diskSize = e.diskSize ?? s.header.size;
  if (diskSize !== s.header.size) checkResize(s, diskSize);
  await flushMetadata(s);
  const snapL1 = await loadSnapshotL1(s, e);
  const increments = await walk(s, snapL1);
  await checkOverflow(s, increments);
  if (diskSize !== s.header.size) {
    await resizeImage(s, diskSize, { zeroTail: false });
    await flushMetadata(s);
  }
  await s.map.growL1(snapL1.size);
  for (const [cluster, k] of increments) await s.refcounts.increment(cluster, k);
  const old = s.map.l1;
  const decrements = await walk(s, old);
  // The active L1 keeps its place and size; it takes the snapshot's entries.
  const next = snapL1.resized(old.size);
  s.map.l1 = next;
  for (let i = 0; i < next.size; i++) s.map.markL1Dirty(i);
  for (const [cluster, k] of decrements) await s.refcounts.decrement(cluster, k);
  await syncCopied(s);
  await flushMetadata(s);
}

export async function deleteSnapshot(s: ImageState, name: string): Promise<void> {
  const { index, entry: e } = findSnapshot(s, name, 'name');
  await flushMetadata(s);
  const snapL1 = await loadSnapshotL1(s, e);
  const decrements = await walk(s, snapL1);
  // The table forgets the snapshot before any flag is set: a set flag never meets a second reference.
  await commitSnapshotTable(s, s.snapshots.filter((_, i) => i !== index));
  for (const [cluster, k] of decrements) await s.refcounts.decrement(cluster, k);
  const cs = s.g.clusterSize;
  for (let c = 0; c < Math.ceil((e.l1Size * 8) / cs); c++) await s.refcounts.decrement(e.l1TableOffset / cs + c);
  await syncCopied(s);
  await flushMetadata(s);
}
