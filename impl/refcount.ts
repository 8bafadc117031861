// Reference counts: the refcount table, a cache of refcount blocks, allocation
// (first fit, self-describing refcount blocks, refcount-table growth like QEMU's
// alloc_refcount_block / qcow2_refcount_area), and deferred frees.
//
// Crash ordering lives here and in flush.ts: in-memory refcount blocks only ever
// hold *increments* relative to the file, so they may be written at any time (a
// crash then leaves leaks, never corruption). Decrements wait in `pending` until
// the references they drop are on disk (applyDecrements, the last flush phase);
// until then the cluster keeps its stored count, so it cannot be reused before a
// flush.
import type { BlockFile } from './io/block-file.js';
import type { Geometry } from './geometry.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { reftableSizeBytesMax } from './limits.js';
import { TableCache } from './cache/table-cache.js';
import { RefcountBlock } from './format/refcount-block.js';
import { encodeReftable } from './format/refcount-table.js';
import { areaBlocks } from './refcount-area.js';

export class Refcounts {
  private readonly cache: TableCache<RefcountBlock>;
  /** Reftable entries changed in memory since the last flush. */
  private readonly reftableDirty = new Set<number>();
  /** The reftable moved: header fields at 48 must be rewritten after it. */
  private reftableMoved = false;
  /** cluster index -> references dropped but not yet written (see header comment). */
  private readonly pending = new Map<number, number>();
  /** First cluster that may be free (QEMU free_cluster_index). */
  private freeHint = 0;
  /** Offsets of every refcount block (for overlap checks). */
  private readonly blockOffsets: Set<number>;
  /** Called when a cluster's stored count reaches 0 (drop it from metadata caches). */
  onFreed: (clusterOffset: number) => void = () => {};

  constructor(
    private readonly file: BlockFile,
    private readonly g: Geometry,
    public reftable: Float64Array,
    public reftableOffset: number,
    public reftableClusters: number,
    cacheEntries: number,
  ) {
    this.blockOffsets = new Set([...reftable].filter((o) => o !== 0));
    this.cache = new TableCache<RefcountBlock>(cacheEntries, {
      load: async (offset) => new RefcountBlock(await file.pread(offset, g.clusterSize), g.refcountOrder),
      // Safe at any time: a block holds only increments relative to the file.
      onDirtyEviction: async (offset, block) => {
        await file.pwrite(offset, block.bytes);
        this.cache.markClean(offset);
      },
    });
  }

  /** Whether a host range overlaps the refcount table or a refcount block. */
  overlapsMetadata(offset: number, length: number): boolean {
    const cs = this.g.clusterSize;
    const tableEnd = this.reftableOffset + this.reftableClusters * cs;
    if (offset < tableEnd && offset + length > this.reftableOffset) return true;
    for (let c = Math.floor(offset / cs); c * cs < offset + length; c++) if (this.blockOffsets.has(c * cs)) return true;
    return false;
  }

  private async block(tableIndex: number): Promise<RefcountBlock | undefined> {
    const offset = this.reftable[tableIndex];
    if (offset === undefined || offset === 0) return undefined;
    return this.cache.get(offset);
  }

  /** The count stored in the refcount block (including not-yet-applied decrements). */
  async stored(cluster: number): Promise<number> {
    const block = await this.block(Math.floor(cluster / this.g.refblockEntriesCount));
    return block ? block.get(cluster % this.g.refblockEntriesCount) : 0;
  }

  /** The count once pending decrements are applied: the number of live references. */
  async logical(cluster: number): Promise<number> {
    return (await this.stored(cluster)) - (this.pending.get(cluster) ?? 0);
  }

  /** Add k references; callers check overflow first (snapshot.ts), so this asserts. */
  async increment(cluster: number, k = 1): Promise<void> {
    // allocate() takes only clusters stored at 0, and the snapshot operations,
    // the only other callers, flush (applying every pending decrement) first.
    assert(!this.pending.has(cluster), `cluster ${cluster} gains references while it has some to drop`);
    const index = Math.floor(cluster / this.g.refblockEntriesCount);
    const block = await this.block(index);
    // allocate() made the block first; every other caller adds to a counted cluster.
    assert(block !== undefined, `cluster ${cluster} has a refcount block before it is counted`);
    const value = block.get(cluster % this.g.refblockEntriesCount) + k;
    assert(value <= this.g.refcountMax, `refcount of cluster ${cluster} stays within ${this.g.refcountMax}`);
    block.set(cluster % this.g.refblockEntriesCount, value);
    this.cache.markDirty(this.reftable[index] ?? 0);
  }

  /** Drop k references; the stored count changes only in applyDecrements. */
  async decrement(cluster: number, k = 1): Promise<void> {
    const pending = (this.pending.get(cluster) ?? 0) + k;
    assert((await this.stored(cluster)) >= pending, `cluster ${cluster} has ${pending} references to drop`);
    this.pending.set(cluster, pending);
  }

  /** Allocate `count` contiguous clusters with refcount 1; returns the host offset. */
  async allocate(count: number): Promise<number> {
    assert(Number.isSafeInteger(count) && count >= 1, 'allocate at least one cluster');
    // New refcount blocks land at the start of their range; a run that long could
    // never avoid them, so it goes to a fresh area past everything counted.
    if (count >= this.g.refblockEntriesCount) return this.allocateArea(count);
    for (;;) {
      const start = await this.findFreeRun(count, this.freeHint);
      // A new refcount block may take clusters of the run: search again then.
      if (await this.ensureBlocks(start, count)) continue;
      for (let c = start; c < start + count; c++) await this.increment(c);
      this.freeHint = start + count;
      return start * this.g.clusterSize;
    }
  }

  /** The longest run allocate() places first-fit (longer ones go past the end). */
  get runClustersMax(): number {
    return this.g.refblockEntriesCount - 1;
  }

  /**
   * Allocate count clusters after the last refcount-block range in use: m new
   * blocks (describing themselves and the run) followed by the run.
   */
  private async allocateArea(count: number): Promise<number> {
    const R = this.g.refblockEntriesCount;
    let m = 1;
    while (m * R < m + count) m++;
    let k = this.reftable.length;
    while (this.reftable[k - 1] === 0) k--;
    if (k + m > this.reftable.length) {
      await this.growReftable(k + m - 1);
      return this.allocateArea(count);
    }
    for (const [j, block] of areaBlocks(this.g, m, m + count).entries()) {
      const offset = (k * R + j) * this.g.clusterSize;
      this.reftable[k + j] = offset;
      this.blockOffsets.add(offset);
      this.reftableDirty.add(k + j);
      await this.cache.put(offset, block);
    }
    return (k * R + m) * this.g.clusterSize;
  }

  /** Undo a fresh allocation that never got referenced (failed write). */
  async release(offset: number, count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.decrement(offset / this.g.clusterSize + i);
  }

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

  /** Create missing refcount blocks for [start, start+count); true if any was created. */
  private async ensureBlocks(start: number, count: number): Promise<boolean> {
    const R = this.g.refblockEntriesCount;
    const last = Math.floor((start + count - 1) / R);
    for (let index = Math.floor(start / R); index <= last; index++) {
      if (index >= this.reftable.length) {
        await this.growReftable(index);
        return true;
      }
      if (this.reftable[index] === 0) {
        // A range without a block holds no counted cluster, so its first cluster
        // is free: put the block there, describing itself.
        assert(index > 0, 'the header cluster is always counted');
        const at = index * R;
        const block = new RefcountBlock(new Uint8Array(this.g.clusterSize), this.g.refcountOrder);
        block.set(0, 1);
        this.reftable[index] = at * this.g.clusterSize;
        this.blockOffsets.add(at * this.g.clusterSize);
        this.reftableDirty.add(index);
        await this.cache.put(at * this.g.clusterSize, block);
        return true;
      }
    }
    return false;
  }

  /**
   * Move the reftable to the first refcount-block range past everything counted
   * (qcow2_refcount_area): m new self-describing blocks, then the new table, sized
   * with 50% headroom. The old table is freed after the next flush.
   */
  private async growReftable(neededIndex: number): Promise<void> {
    const R = this.g.refblockEntriesCount;
    const perCluster = this.g.clusterSize / 8;
    const k = Math.max(neededIndex, this.reftable.length);
    let m = 1;
    let entries = 0;
    let tableClusters = 0;
    for (;;) {
      entries = Math.ceil(Math.max(k + m, neededIndex + 1) * 1.5 / perCluster) * perCluster;
      tableClusters = entries / perCluster;
      if (m + tableClusters <= m * R) break;
      m++;
    }
    if (entries * 8 > reftableSizeBytesMax) {
      throw new Qcow2Error('unsupported', `refcount table would need ${entries} entries (limit ${reftableSizeBytesMax / 8})`);
    }
    const first = k * R;
    const table = new Float64Array(entries);
    table.set(this.reftable);
    const blocks = areaBlocks(this.g, m, m + tableClusters);
    for (const [j, block] of blocks.entries()) {
      table[k + j] = (first + j) * this.g.clusterSize;
      this.blockOffsets.add((first + j) * this.g.clusterSize);
      await this.cache.put((first + j) * this.g.clusterSize, block);
    }
    const oldOffset = this.reftableOffset;
    const oldClusters = this.reftableClusters;
    this.reftable = table;
    this.reftableOffset = (first + m) * this.g.clusterSize;
    this.reftableClusters = tableClusters;
    this.reftableMoved = true;
    for (let c = 0; c < oldClusters; c++) await this.decrement(oldOffset / this.g.clusterSize + c);
  }

  /**
   * Flush phase 1: refcount blocks, then the reftable (entries pointing at new
   * blocks only after the blocks), then the header's reftable fields when it moved.
   */
  async writeIncrements(): Promise<void> {
    const dirty = this.cache.dirtyEntries();
    for (const [offset, block] of dirty) await this.file.pwrite(offset, block.bytes);
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

  /** Last flush phase: apply the deferred decrements; freed clusters become reusable. */
  async applyDecrements(): Promise<void> {
    const R = this.g.refblockEntriesCount;
    const entries = [...this.pending];
    this.pending.clear();
    for (const [cluster, k] of entries) {
      const index = Math.floor(cluster / R);
      const block = await this.block(index);
      assert(block !== undefined, `cluster ${cluster} with references has a refcount block`);
      const value = block.get(cluster % R) - k;
      assert(value >= 0, `refcount of cluster ${cluster} does not go negative`);
      block.set(cluster % R, value);
      this.cache.markDirty(this.reftable[index] ?? 0);
      if (value === 0) {
        this.freeHint = Math.min(this.freeHint, cluster);
        this.onFreed(cluster * this.g.clusterSize);
      }
    }
    await this.writeIncrements();
  }

  /** Highest cluster with a non-zero stored count (for truncating after shrink). */
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
    this.pending.clear();
    this.freeHint = 0;
    await this.writeIncrements();
  }
}
