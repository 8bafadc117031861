// A bounded, dirty-tracking LRU of metadata tables keyed by host offset, like
// QEMU's qcow2-cache.c. The owner decides what "making room" means for a dirty
// victim (onDirtyEviction), which is where write ordering between caches lives:
// the L2 cache flushes the whole image first (refcounts before L2 tables), the
// refcount cache may write a block on its own (it only ever holds increments).
import { assert } from '../assert.js';

export interface TableCacheHooks<T> {
  load(offset: number): Promise<T>;
  /** Make room for a new entry when every cached entry is dirty. */
  onDirtyEviction(offset: number, value: T): Promise<void>;
}

interface Slot<T> {
  value: T;
  dirty: boolean;
}

export class TableCache<T> {
  // A Map iterates in insertion order: re-inserting on use keeps LRU order.
  private readonly slots = new Map<number, Slot<T>>();
  readonly capacity: number;

  constructor(
    capacity: number,
    private readonly hooks: TableCacheHooks<T>,
  ) {
    assert(Number.isSafeInteger(capacity) && capacity >= 2, 'a cache holds at least two tables');
    this.capacity = capacity;
  }

  get size(): number {
    return this.slots.size;
  }

  has(offset: number): boolean {
    return this.slots.has(offset);
  }

  async get(offset: number): Promise<T> {
    const slot = this.slots.get(offset);
    if (slot) {
      this.slots.delete(offset);
      this.slots.set(offset, slot);
      return slot.value;
    }
    const value = await this.hooks.load(offset);
    // The load may have awaited: someone else may have inserted it meanwhile.
    const raced = this.slots.get(offset);
    if (raced) return raced.value;
    await this.insert(offset, value, false);
    return value;
  }

  /** Insert a table that exists only in memory (a new or copied table). */
  async put(offset: number, value: T): Promise<void> {
    assert(!this.slots.has(offset), `table at ${offset} is not cached twice`);
    await this.insert(offset, value, true);
  }

  markDirty(offset: number): void {
    const slot = this.slots.get(offset);
    assert(slot !== undefined, `dirty table at ${offset} is cached`);
    slot.dirty = true;
  }

  markClean(offset: number): void {
    const slot = this.slots.get(offset);
    if (slot) slot.dirty = false;
  }

  /** Forget a table whose cluster was freed (its contents are meaningless now). */
  drop(offset: number): void {
    this.slots.delete(offset);
  }

  /** Dirty entries in offset order (sequential writes). */
  dirtyEntries(): [number, T][] {
    const out: [number, T][] = [];
    for (const [offset, slot] of this.slots) if (slot.dirty) out.push([offset, slot.value]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  isDirty(offset: number): boolean {
    return this.slots.get(offset)?.dirty ?? false;
  }

  clear(): void {
    assert(this.dirtyEntries().length === 0, 'only a clean cache is cleared');
    this.slots.clear();
  }

  private async insert(offset: number, value: T, dirty: boolean): Promise<void> {
    while (this.slots.size >= this.capacity) {
      const victim = this.pickVictim();
      if (victim === undefined) break;
      const slot = this.slots.get(victim);
      assert(slot !== undefined, 'victim is cached');
      if (slot.dirty) {
        await this.hooks.onDirtyEviction(victim, slot.value);
        assert(!this.slots.get(victim)?.dirty, 'dirty eviction hook cleans the victim');
      }
      this.slots.delete(victim);
    }
    this.slots.set(offset, { value, dirty });
  }

  /** Least recently used clean entry, else the least recently used one. */
  private pickVictim(): number | undefined {
    let first: number | undefined;
    for (const [offset, slot] of this.slots) {
      first ??= offset;
      if (!slot.dirty) return offset;
    }
    return first;
  }
}
