// Reference counts: the refcount table, a cache of refcount blocks and
// allocation (QEMU qcow2-refcount.c: alloc_clusters_noref, alloc_refcount_block,
// qcow2_refcount_area, update_refcount, qcow2_free_clusters).
//
// Space: a freed cluster is free at once (the in-memory count drops and the
// free hint moves back to it, like QEMU's free_cluster_index), and the hint is
// exact: no cluster below it is free. Data and single-cluster metadata take the
// lowest free clusters, in as few runs as the holes allow (allocateClusters);
// only tables that must be contiguous (L1 tables, the snapshot table) take the
// first hole that fits them (allocate). A new refcount block goes to the first
// free cluster after the run that needs it, as in QEMU, so no free cluster is
// skipped for it.
//
// Crash ordering (with flush.ts): a refcount block on disk may count more than
// the references on disk (a leak), never fewer. So a block is always written
// with every *undurable* drop added back: references dropped in memory whose
// dropping metadata (L2 tables, L1, header) may not be on disk yet. Only the
// last flush phase, after that metadata, writes the true counts and forgets the
// undurable drops. A cluster with an undurable drop is never handed out again
// before that: allocation runs a full flush first (QEMU orders the L2 update
// before the refcount decrease with qcow2_cache_set_dependency and flushes the
// dependency before reusing), so two L2 tables on disk never reference one
// cluster after a crash, whatever the order of the writes between barriers.
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { TableCache } from './cache/table-cache.js';
import { RefcountBlock } from './format/refcount-block.js';
import { encodeReftable } from './format/refcount-table.js';
import { areaBlocks, reftableGrowth } from './refcount-area.js';

/** Host clusters handed out by allocateClusters: [host offset, clusters] in ascending order. */
export type Extent = readonly [offset: number, clusters: number];

export class Refcounts {
  private readonly cache: TableCache<RefcountBlock>;
  /** Reftable entries changed in memory since the last flush. */
  private readonly reftableDirty = new Set<number>();
  /** The reftable moved: header fields at 48 must be rewritten after it. */
  private reftableMoved = false;
  /** Refcount-table index -> (cluster -> references dropped in memory, maybe still on disk). */
  private readonly undurable = new Map<number, Map<number, number>>();
  /** No cluster below it is free (QEMU free_cluster_index, kept exact). */
  private freeHint = 0;
  /** Offset of every refcount block -> its refcount-table index. */
  private readonly blockIndex = new Map<number, number>();
  /** Called when a cluster's count reaches 0 (drop it from metadata caches). */
  onFreed: (clusterOffset: number) => void = () => {};
  /** Makes every in-memory change durable (flushMetadata); open.ts sets it. */
  flushAll: () => Promise<void> = () => Promise.reject(new Error('Refcounts.flushAll is not wired'));

  constructor(
    private readonly file: BlockFile,
    private readonly g: Geometry,
    public reftable: Float64Array,
    public reftableOffset: number,
    public reftableClusters: number,
    cacheEntries: number,
  ) {
    for (const [index, offset] of reftable.entries()) if (offset !== 0) this.blockIndex.set(offset, index);
    this.cache = new TableCache<RefcountBlock>(cacheEntries, {
      load: async (offset) => {
        const block = new RefcountBlock(await file.pread(offset, g.clusterSize), g.refcountOrder);
        const index = this.blockIndex.get(offset);
        assert(index !== undefined, `refcount block at ${offset} is in the refcount table`);
        // The file counts undurable drops still; memory does not.
        for (const [cluster, k] of this.undurable.get(index) ?? []) {
          block.set(cluster % g.refblockEntriesCount, block.get(cluster % g.refblockEntriesCount) - k);
        }
        return block;
      },
      // Safe at any time: the block is written with its undurable drops added back.
      onDirtyEviction: async (offset, block) => {
        await file.pwrite(offset, this.diskBytes(offset, block));
        this.cache.markClean(offset);
      },
    });
  }

  /** Whether a host range overlaps the refcount table or a refcount block. */
  overlapsMetadata(offset: number, length: number): boolean {
    const cs = this.g.clusterSize;
    const tableEnd = this.reftableOffset + this.reftableClusters * cs;
    if (offset < tableEnd && offset + length > this.reftableOffset) return true;
    for (let c = Math.floor(offset / cs); c * cs < offset + length; c++) if (this.blockIndex.has(c * cs)) return true;
    return false;
  }

  private async block(tableIndex: number): Promise<RefcountBlock | undefined> {
    const offset = this.reftable[tableIndex];
    if (offset === undefined || offset === 0) return undefined;
    return this.cache.get(offset);
  }

  /** The bytes a block may be written as before the last flush phase: undurable drops counted. */
  private diskBytes(offset: number, block: RefcountBlock): Uint8Array {
    const index = this.blockIndex.get(offset);
    assert(index !== undefined, `refcount block at ${offset} is in the refcount table`);
    const drops = this.undurable.get(index);
    if (drops === undefined) return block.bytes;
    const copy = new RefcountBlock(block.bytes.slice(), this.g.refcountOrder);
    const R = this.g.refblockEntriesCount;
    for (const [cluster, k] of drops) copy.set(cluster % R, copy.get(cluster % R) + k);
    return copy.bytes;
  }

  /** The number of live references to a cluster (0: free). */
  async logical(cluster: number): Promise<number> {
    const block = await this.block(Math.floor(cluster / this.g.refblockEntriesCount));
    return block ? block.get(cluster % this.g.refblockEntriesCount) : 0;
  }

  /**
   * Whether a reference to the cluster was dropped in memory and the drop may
   * not be on disk yet (until the last flush phase): such a cluster takes no new
   * reference before a flush.
   */
  isUndurable(cluster: number): boolean {
    return this.undurable.get(Math.floor(cluster / this.g.refblockEntriesCount))?.has(cluster) ?? false;
  }

  /** Add k references; callers check overflow first (snapshot.ts), so this asserts. */
  async increment(cluster: number, k = 1): Promise<void> {
    // Allocation flushes before it takes a cluster with an undurable drop, and the
    // snapshot operations, the only other callers, flush first.
    assert(!this.isUndurable(cluster), `cluster ${cluster} gains references while a drop of one is not durable`);
    const index = Math.floor(cluster / this.g.refblockEntriesCount);
    const block = await this.block(index);
    // Allocation covers a run first; every other caller adds to a counted cluster.
    assert(block !== undefined, `cluster ${cluster} has a refcount block before it is counted`);
    const value = block.get(cluster % this.g.refblockEntriesCount) + k;
    assert(value <= this.g.refcountMax, `refcount of cluster ${cluster} stays within ${this.g.refcountMax}`);
    block.set(cluster % this.g.refblockEntriesCount, value);
    this.cache.markDirty(this.reftable[index] ?? 0);
  }

  /**
   * Drop k references (QEMU update_refcount with a negative addend). The count
   * drops in memory at once; the drop stays undurable until the last flush phase.
   */
  async decrement(cluster: number, k = 1): Promise<void> {
    const R = this.g.refblockEntriesCount;
    const index = Math.floor(cluster / R);
    const block = await this.block(index);
    assert(block !== undefined, `cluster ${cluster} with references has a refcount block`);
    const value = block.get(cluster % R) - k;
    assert(value >= 0, `cluster ${cluster} has ${k} references to drop`);
    block.set(cluster % R, value);
    this.cache.markDirty(this.reftable[index] ?? 0);
    let drops = this.undurable.get(index);
    if (drops === undefined) {
      drops = new Map();
      this.undurable.set(index, drops);
    }
    drops.set(cluster, (drops.get(cluster) ?? 0) + k);
    if (value === 0) {
      this.freeHint = Math.min(this.freeHint, cluster);
      this.onFreed(cluster * this.g.clusterSize);
    }
  }

  /**
   * Allocate `count` contiguous clusters with refcount 1 (QEMU qcow2_alloc_clusters):
   * the first free run at or after the hint. Returns the host offset. Only for
   * tables that must be contiguous; data goes through allocateClusters.
   */
  async allocate(count: number): Promise<number> {
    assert(Number.isSafeInteger(count) && count >= 1, 'allocate at least one cluster');
    for (;;) {
      const start = await this.findFreeRun(count, this.freeHint);
      // A new refcount block or refcount table may take clusters of the run: search again then.
      if (await this.cover(start, count, start + count)) continue;
      if (await this.reuseNeedsFlush(start, count)) continue;
      for (let c = start; c < start + count; c++) await this.increment(c);
      this.taken(start, start + count);
      return start * this.g.clusterSize;
    }
  }

  /**
   * Allocate `count` clusters with refcount 1, the lowest free ones, in
   * ascending runs (merged when adjacent). The file grows only once no free
   * cluster is left below its end.
   */
  async allocateClusters(count: number): Promise<Extent[]> {
    assert(Number.isSafeInteger(count) && count >= 1, 'allocate at least one cluster');
    const R = this.g.refblockEntriesCount;
    const extents: [number, number][] = [];
    let left = count;
    while (left > 0) {
      const start = await this.findFreeRun(1, this.freeHint);
      // A range without a block gets one at its first free cluster, which is this one.
      if (await this.cover(start, 1, start)) continue;
      const n = await this.freeRunLength(start, Math.min(left, (Math.floor(start / R) + 1) * R - start));
      if (await this.reuseNeedsFlush(start, n)) continue;
      for (let c = start; c < start + n; c++) await this.increment(c);
      this.taken(start, start + n);
      const last = extents[extents.length - 1];
      if (last !== undefined && last[0] + last[1] === start) last[1] += n;
      else extents.push([start, n]);
      left -= n;
    }
    assert(extents.reduce((sum, e) => sum + e[1], 0) === count, 'the extents hold exactly the clusters asked for');
    return extents.map(([c, n]) => [c * this.g.clusterSize, n] as const);
  }

  /**
   * A cluster whose drop is not durable yet may still be referenced on disk:
   * before handing it out, flush (the last phase makes every drop durable).
   * True when it flushed (search again; nothing moves, so the same run returns).
   */
  private async reuseNeedsFlush(start: number, count: number): Promise<boolean> {
    for (let c = start; c < start + count; c++) {
      if (this.isUndurable(c)) {
        await this.flushAll();
        assert(this.undurable.size === 0, 'a flush makes every drop durable');
        return true;
      }
    }
    return false;
  }

  /** Clusters [from, to) were just counted: move the hint past them if it pointed there. */
  private taken(from: number, to: number): void {
    assert(this.freeHint <= from || this.freeHint >= to, 'the hint never points inside a free run it skipped');
    if (this.freeHint === from) this.freeHint = to;
  }

  /** Undo a fresh allocation that never got referenced (failed write). */
  async release(offset: number, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.decrement(offset / this.g.clusterSize + i);
  }

  /** The first run of `count` free clusters at or after `from` (a range without a block is free). */
  private async findFreeRun(count: number, from: number): Promise<number> {
    const R = this.g.refblockEntriesCount;
    let runStart = from;
    let c = from;
    while (c - runStart < count) {
      const index = Math.floor(c / R);
      const block = await this.block(index);
      const end = (index + 1) * R;
      if (!block) {
        c = Math.min(end, runStart + count);
        continue;
      }
      for (; c < end && c - runStart < count; c++) {
        if (block.get(c % R) !== 0) runStart = c + 1;
      }
    }
    return runStart;
  }

  /** Free clusters from `start` on, at most `max`, all inside start's (covered) range. */
  private async freeRunLength(start: number, max: number): Promise<number> {
    const R = this.g.refblockEntriesCount;
    const block = await this.block(Math.floor(start / R));
    assert(block !== undefined, 'a run is measured in a covered range');
    let n = 0;
    while (n < max && block.get((start + n) % R) === 0) n++;
    assert(n >= 1, 'a run starts at a free cluster');
    return n;
  }

  /**
   * Give every range of [start, start+count) a refcount block (QEMU
   * alloc_refcount_block); a new block goes to the first free cluster at or
   * after `blockFrom`. True if anything was created (the caller searches again).
   */
  private async cover(start: number, count: number, blockFrom: number): Promise<boolean> {
    const R = this.g.refblockEntriesCount;
    const last = Math.floor((start + count - 1) / R);
    for (let index = Math.floor(start / R); index <= last; index++) {
      if (index >= this.reftable.length) {
        await this.growReftable(index);
        return true;
      }
      if (this.reftable[index] === 0) {
        await this.placeBlock(index, blockFrom);
        return true;
      }
    }
    return false;
  }

  /**
   * A block for range `index` at the first free cluster at or after `from`: it
   * describes itself when it lands in its own range, else the block of the range
   * it lands in counts it (that range first gets a block of its own if needed).
   */
  private async placeBlock(index: number, from: number): Promise<void> {
    const R = this.g.refblockEntriesCount;
    const cs = this.g.clusterSize;
    for (;;) {
      const at = await this.findFreeRun(1, from);
      const home = Math.floor(at / R);
      if (home >= this.reftable.length) return this.growReftable(home);
      if (home !== index && this.reftable[home] === 0) {
        await this.placeBlock(home, at);
        continue;
      }
      // The cluster may be free in memory only: its old owner is still on disk.
      if (await this.reuseNeedsFlush(at, 1)) continue;
      const block = new RefcountBlock(new Uint8Array(cs), this.g.refcountOrder);
      this.reftable[index] = at * cs;
      this.blockIndex.set(at * cs, index);
      this.reftableDirty.add(index);
      await this.cache.put(at * cs, block);
      if (home === index) {
        block.set(at % R, 1);
      } else {
        await this.increment(at);
      }
      this.taken(at, at + 1);
      return;
    }
  }

  /**
   * Move the reftable to the start of range `neededIndex` (or of the first range
   * past the table), QEMU qcow2_refcount_area: m new self-describing blocks, then
   * the new table, sized with 50% headroom. Every cluster there is free: no block
   * counts it. The old table is freed, its drop durable after the next flush.
   */
  private async growReftable(neededIndex: number): Promise<void> {
    const R = this.g.refblockEntriesCount;
    const { areaIndex: k, blocksCount: m, entriesCount: entries, tableClusters } = reftableGrowth(this.g, this.reftable.length, neededIndex);
    const first = k * R;
    const table = new Float64Array(entries);
    table.set(this.reftable);
    const blocks = areaBlocks(this.g, m, m + tableClusters);
    for (const [j, block] of blocks.entries()) {
      const offset = (first + j) * this.g.clusterSize;
      table[k + j] = offset;
      this.blockIndex.set(offset, k + j);
      await this.cache.put(offset, block);
    }
    const oldOffset = this.reftableOffset;
    const oldClusters = this.reftableClusters;
    this.reftable = table;
    this.reftableOffset = (first + m) * this.g.clusterSize;
    this.reftableClusters = tableClusters;
    this.reftableMoved = true;
    this.taken(first, first + m + tableClusters);
    for (let c = 0; c < oldClusters; c++) await this.decrement(oldOffset / this.g.clusterSize + c);
  }

  /**
   * Flush phase 1: refcount blocks (undurable drops still counted), then the
   * reftable (entries pointing at new blocks only after the blocks), then the
   * header's reftable fields when it moved.
   */
  async writeIncrements(): Promise<void> {
    const dirty = this.cache.dirtyEntries();
    for (const [offset, block] of dirty) await this.file.pwrite(offset, this.diskBytes(offset, block));
    for (const [offset] of dirty) this.cache.markClean(offset);
    if (dirty.length > 0) await this.file.flush();
    if (this.reftableMoved) {
      await this.file.pwrite(this.reftableOffset, encodeReftable(this.reftable));
      await this.file.flush();
      const fields = new Uint8Array(12);
      const view = new DataView(fields.buffer);
      view.setBigUint64(0, BigInt(this.reftableOffset));
      view.setUint32(8, this.reftableClusters);
      await this.file.pwrite(48, fields);
      await this.file.flush();
      this.reftableMoved = false;
      this.reftableDirty.clear();
    } else if (this.reftableDirty.size > 0) {
      // One write from the lowest to the highest changed entry: the entries
      // between hold what the file holds already.
      let lo = Infinity;
      let hi = 0;
      for (const i of this.reftableDirty) {
        lo = Math.min(lo, i);
        hi = Math.max(hi, i + 1);
      }
      await this.file.pwrite(this.reftableOffset + lo * 8, encodeReftable(this.reftable, lo, hi - lo));
      await this.file.flush();
      this.reftableDirty.clear();
    }
  }

  /**
   * Last flush phase, once nothing on disk references the dropped clusters: the
   * blocks with undurable drops get their true counts, and the drops are durable.
   */
  async writeDecrements(): Promise<void> {
    if (this.undurable.size === 0) return;
    for (const index of [...this.undurable.keys()].sort((a, b) => a - b)) {
      const offset = this.reftable[index] ?? 0;
      const block = await this.block(index);
      assert(block !== undefined, `refcount block ${index} with drops is in the table`);
      this.undurable.delete(index);
      await this.file.pwrite(offset, block.bytes);
      this.cache.markClean(offset);
    }
    await this.file.flush();
  }

  /** Highest cluster with a non-zero count (for truncating after shrink). */
  async lastUsedCluster(): Promise<number> {
    const R = this.g.refblockEntriesCount;
    for (let index = this.reftable.length - 1; index >= 0; index--) {
      const block = await this.block(index);
      if (!block) continue;
      for (let i = R - 1; i >= 0; i--) if (block.get(i) !== 0) return index * R + i;
    }
    return 0;
  }

  /**
   * Overwrite every stored count (dirty-image repair, which has checked each
   * count against refcountMax); counts for uncovered clusters must be 0.
   */
  async rewriteAll(counts: Map<number, number>): Promise<void> {
    const R = this.g.refblockEntriesCount;
    for (const cluster of counts.keys()) {
      const index = Math.floor(cluster / R);
      if (!this.reftable[index]) {
        throw new Qcow2Error('corrupt', `cannot repair refcounts: cluster ${cluster} has no refcount block`);
      }
    }
    // Repair runs at open, before any drop.
    assert(this.undurable.size === 0, 'no drop is pending while refcounts are rebuilt');
    for (const [index, offset] of this.reftable.entries()) {
      if (offset === 0) continue;
      const block = await this.cache.get(offset);
      for (let i = 0; i < R; i++) {
        const want = counts.get(index * R + i) ?? 0;
        if (block.get(i) !== want) {
          block.set(i, want);
          this.cache.markDirty(offset);
        }
      }
    }
    this.freeHint = 0;
    await this.writeIncrements();
  }
}
