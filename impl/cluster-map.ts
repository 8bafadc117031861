// The active mapping guest cluster -> L2 entry (QEMU qcow2-cluster.c): the active
// L1 table in memory, a cache of L2 tables, privatizing L2 tables before any
// change (get_cluster_table) and L1 growth.
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import type { Refcounts } from './refcount.js';
import { assert, assertNever } from './assert.js';
import { Qcow2Error } from './errors.js';
import { l1SizeBytesMax } from './limits.js';
import { TableCache } from './cache/table-cache.js';
import { L1Table, encodeL1 } from './format/l1-table.js';
import { L2Table, unallocatedEntry, type L2Entry } from './format/l2-entry.js';
import { emptyBitmap, type SubclusterBitmap } from './format/l2-entry-extended.js';
import { compressedClusters } from './compressed.js';

export class ClusterMap {
  readonly l2Cache: TableCache<L2Table>;
  /** Entries [lo, hi) of the L1 changed since the last flush. */
  private l1DirtyLo = Infinity;
  private l1DirtyHi = 0;
  /** The L1 moved (grown): the whole table must be written before the header. */
  private l1Moved = false;
  /** Set when l1TableOffset / l1Size changed and the header must be rewritten. */
  onL1Moved: () => void = () => {};

  constructor(
    private readonly file: BlockFile,
    private readonly g: Geometry,
    private readonly refcounts: Refcounts,
    public l1: L1Table,
    public l1Offset: number,
    cacheEntries: number,
    /** The L2 cache may only write a table after everything it depends on: a full flush. */
    flushAll: () => Promise<void>,
  ) {
    this.l2Cache = new TableCache<L2Table>(cacheEntries, {
      load: async (offset) => new L2Table(await file.pread(offset, g.clusterSize), g, offset),
      onDirtyEviction: flushAll,
    });
  }

  l1Index(guestCluster: number): number {
    return Math.floor(guestCluster / this.g.l2EntriesCount);
  }

  /** The L2 table behind an L1 index, or undefined when none is allocated. */
  async table(l1Index: number): Promise<L2Table | undefined> {
    const offset = this.l2OffsetAt(l1Index);
    return offset === 0 ? undefined : this.l2Cache.get(offset);
  }

  async entry(guestCluster: number): Promise<L2Entry> {
    const table = await this.table(this.l1Index(guestCluster));
    return table ? table.get(guestCluster % this.g.l2EntriesCount) : unallocatedEntry;
  }

  /** The subcluster bitmap of an extended entry (empty for a compressed one, whose bits QEMU ignores on reads). */
  async bitmap(guestCluster: number): Promise<SubclusterBitmap> {
    const table = await this.table(this.l1Index(guestCluster));
    if (table === undefined) return emptyBitmap;
    const index = guestCluster % this.g.l2EntriesCount;
    return table.get(index).kind === 'compressed' ? emptyBitmap : table.bitmap(index);
  }

  /** Write an entry (and with extended L2, its subcluster bitmap) into a table that privatize() returned. */
  async setEntry(guestCluster: number, entry: L2Entry, bitmap?: SubclusterBitmap): Promise<void> {
    const l1Index = this.l1Index(guestCluster);
    assert(this.l1.copied[l1Index] === 1, 'entries are only set in private L2 tables');
    assert(bitmap === undefined || this.g.extendedL2, 'only extended entries have a bitmap');
    const offset = this.l1.offsets[l1Index] ?? 0;
    const table = await this.l2Cache.get(offset);
    table.set(guestCluster % this.g.l2EntriesCount, entry);
    if (bitmap !== undefined) table.setBitmap(guestCluster % this.g.l2EntriesCount, bitmap);
    this.l2Cache.markDirty(offset);
  }

  markL1Dirty(index: number): void {
    assert(Number.isInteger(index) && index >= 0 && index < this.l1.size, 'dirty L1 index inside the table');
    this.l1DirtyLo = Math.min(this.l1DirtyLo, index);
    this.l1DirtyHi = Math.max(this.l1DirtyHi, index + 1);
  }

  /**
   * QEMU get_cluster_table: make the L2 table behind l1Index private to the active
   * L1 (a new empty table, or a copy of a shared one) and return it.
   */
  async privatize(l1Index: number): Promise<L2Table> {
    const old = this.l2OffsetAt(l1Index);
    // COPIED is only ever set on an entry that has a table.
    if (this.l1.copied[l1Index] === 1) return this.l2Cache.get(old);
    const bytes = old === 0 ? new Uint8Array(this.g.clusterSize) : (await this.l2Cache.get(old)).bytes.slice();
    const offset = await this.refcounts.allocate(1);
    const table = new L2Table(bytes, this.g, offset);
    await this.l2Cache.put(offset, table);
    this.l1.offsets[l1Index] = offset;
    this.l1.copied[l1Index] = 1;
    this.markL1Dirty(l1Index);
    if (old !== 0) await this.refcounts.decrement(old / this.g.clusterSize);
    return table;
  }

  /**
   * The L2 table offset of an L1 entry. Open checks that the L1 covers the disk,
   * and resize and revert grow it before the disk grows, so a guest cluster
   * always has its L1 entry (QEMU's 1.5x growth on a write past the L1 is
   * never needed).
   */
  private l2OffsetAt(l1Index: number): number {
    assert(Number.isInteger(l1Index) && l1Index >= 0 && l1Index < this.l1.size, 'guest clusters inside the disk have an L1 entry');
    const fault = this.l1.faults.get(l1Index);
    if (fault !== undefined) throw fault; // kept by a read-only open: reported on access, as QEMU
    return this.l1.offsets[l1Index] ?? 0;
  }

  /** Grow the active L1 to exactly `size` entries (qcow2_grow_l1_table with exact_size). */
  async growL1(size: number): Promise<void> {
    if (size <= this.l1.size) return;
    if (size * 8 > l1SizeBytesMax) {
      throw new Qcow2Error('unsupported', `L1 table would need ${size} entries (limit ${l1SizeBytesMax / 8})`);
    }
    const offset = await this.refcounts.allocate(Math.ceil((size * 8) / this.g.clusterSize));
    const oldOffset = this.l1Offset;
    const oldClusters = Math.ceil((this.l1.size * 8) / this.g.clusterSize);
    this.l1 = this.l1.resized(size);
    this.l1Offset = offset;
    this.l1Moved = true;
    this.onL1Moved();
    for (let c = 0; c < oldClusters; c++) await this.refcounts.decrement(oldOffset / this.g.clusterSize + c);
  }

  /** Drop a reference to the data behind an entry (compressed: every touched cluster). */
  async release(entry: L2Entry): Promise<void> {
    switch (entry.kind) {
      case 'unallocated':
      case 'zero-plain':
        return;
      case 'normal':
      case 'zero-alloc':
        return this.refcounts.decrement(entry.offset / this.g.clusterSize);
      case 'compressed':
        for (const c of compressedClusters(entry.descriptor, this.g)) await this.refcounts.decrement(c);
        return;
      default:
        return assertNever(entry, 'L2 entry');
    }
  }

  /** Flush phase 2: L2 tables (after the refcounts they need). */
  async writeL2Tables(): Promise<void> {
    const dirty = this.l2Cache.dirtyEntries();
    for (const [offset, table] of dirty) await this.file.pwrite(offset, table.bytes);
    for (const [offset] of dirty) this.l2Cache.markClean(offset);
    if (dirty.length > 0) await this.file.flush();
  }

  /** Flush phase 3: the active L1 (after the L2 tables it points to). */
  async writeL1(): Promise<void> {
    if (this.l1Moved) {
      // Only growL1 moves the L1, and never to an empty one.
      await this.file.pwrite(this.l1Offset, encodeL1(this.l1));
    } else if (this.l1DirtyHi > 0) {
      // Whole 512-byte sectors around the changed entries, like QEMU.
      const lo = Math.floor(this.l1DirtyLo / 64) * 64;
      const hi = Math.min(this.l1.size, Math.ceil(this.l1DirtyHi / 64) * 64);
      await this.file.pwrite(this.l1Offset + lo * 8, encodeL1(this.l1, lo, hi - lo));
    } else {
      return;
    }
    await this.file.flush();
    this.l1Moved = false;
    this.l1DirtyLo = Infinity;
    this.l1DirtyHi = 0;
  }
}
