// A working copy of the active view for the length of one step. It copies the
// L1 array, and each L2 table only when it is first touched (privatize), so the
// input state is never mutated and untouched tables stay shared.
// Each method is one per-cluster rule of docs/semantics.md.
import { readBacking } from './read.js';
import { countRefs, type Refcounts } from './refcounts.js';
import { geometry, subclusterState, type DataCluster, type Geometry, type L2Entry, type L2Table, type ModelState } from './state.js';
import { allocatedSpan, uniformSubclusters, withSubclusters, type Subclusters } from './subclusters.js';

export class ActiveDraft {
  readonly g: Geometry;
  /** Extended L2 entries: every zero-plain and normal entry carries its subclusters. */
  readonly extended: boolean;
  private readonly l1: (L2Table | undefined)[];
  /** L1 index → the private entries of its (privatized) table. */
  private readonly privatized = new Map<number, { id: number; entries: Map<number, L2Entry> }>();
  private readonly counts: Refcounts;
  private nextId: number;

  constructor(private readonly base: ModelState) {
    this.g = geometry(base.options);
    this.extended = base.options.extendedL2 === true;
    this.l1 = [...base.active];
    this.counts = countRefs(base);
    this.nextId = base.nextId;
  }

  entry(guestCluster: number): L2Entry | undefined {
    const l1Index = Math.floor(guestCluster / this.g.l2EntriesCount);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const own = this.privatized.get(l1Index);
    return own !== undefined ? own.entries.get(l2Index) : this.l1[l1Index]?.entries.get(l2Index);
  }

  /**
   * QEMU get_cluster_table: an empty L1 entry gets a new all-unallocated table,
   * a shared table is replaced by a copy (the old one loses a reference).
   * A table referenced once is already private: same identity, copied map.
   */
  privatize(l1Index: number): Map<number, L2Entry> {
    const own = this.privatized.get(l1Index);
    if (own !== undefined) return own.entries;
    const table = this.l1[l1Index];
    let id: number;
    if (table === undefined) {
      id = this.freshId();
    } else if (this.counts.l2Tables.get(table.id) === 1) {
      id = table.id;
    } else {
      id = this.freshId();
      this.addRef(this.counts.l2Tables, table.id, -1);
    }
    this.counts.l2Tables.set(id, 1);
    const entries = new Map(table?.entries ?? []);
    this.privatized.set(l1Index, { id, entries });
    return entries;
  }

  /**
   * Write rule: `bytes` at `offsetInCluster` of guest cluster `guestCluster`.
   * With subclusters, the touched ones become allocated (qcow2_alloc_cluster_link_l2).
   */
  write(guestCluster: number, offsetInCluster: number, bytes: Uint8Array): void {
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const old = entries.get(l2Index);
    // The old guest view is kept (COW reads through the guest view: a compressed
    // cluster is copied decompressed, zeros stay zeros, and what is unallocated
    // comes from the backing chain, also past the virtual size as QEMU's COW reads it).
    const content = this.guestBytes(old, guestCluster);
    content.set(bytes, offsetInCluster);
    // In place only for an allocated cluster nothing else references (COPIED);
    // a compressed stream is never written in place.
    const inPlace = (old?.kind === 'normal' || old?.kind === 'zero-alloc') && this.counts.dataClusters.get(old.data.id) === 1;
    const data: DataCluster = { id: inPlace && old !== undefined ? old.data.id : this.freshId(), bytes: content };
    if (!inPlace) this.release(old);
    this.counts.dataClusters.set(data.id, 1);
    if (!this.extended) {
      entries.set(l2Index, { kind: 'normal', data });
      return;
    }
    const first = Math.floor(offsetInCluster / this.g.subclusterSize);
    const end = Math.ceil((offsetInCluster + bytes.length) / this.g.subclusterSize);
    entries.set(l2Index, { kind: 'normal', data, subclusters: writtenSubclusters(old, inPlace, first, end) });
  }

  /**
   * Compressed write of one whole cluster (qcow2_alloc_compressed_cluster_offset):
   * false, and nothing changes, when the entry has a host offset.
   */
  compress(guestCluster: number, content: Uint8Array): boolean {
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const old = entries.get(l2Index);
    if (old !== undefined && old.kind !== 'zero-plain') return false;
    const data: DataCluster = { id: this.freshId(), bytes: content };
    this.counts.dataClusters.set(data.id, 1);
    entries.set(l2Index, { kind: 'compressed', data });
    return true;
  }

  /**
   * Version 3 zeroize of a whole cluster (zero_in_l2_slice: a compressed entry
   * is always unmapped). With subclusters all 32 become zero; a kept host
   * cluster stays normal (QEMU's ZERO_ALLOC subclusters).
   */
  zeroize(guestCluster: number, unmap: boolean): void {
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const old = entries.get(l2Index);
    if ((old?.kind === 'normal' || old?.kind === 'zero-alloc') && !unmap) {
      entries.set(l2Index, this.extended ? { kind: 'normal', data: old.data, subclusters: uniformSubclusters('zero') } : { kind: 'zero-alloc', data: old.data });
      return;
    }
    this.release(old);
    entries.set(l2Index, this.zeroPlain());
  }

  /**
   * Subclusters [first, end) of one cluster become zero, the others keep their
   * state (zero_l2_subclusters: never all 32, never unmaps, whatever COPIED
   * says). False, and no entry changes, for a compressed cluster (-ENOTSUP:
   * its caller falls back to writing zeros); the table is privatized anyway,
   * since get_cluster_table comes before the type is looked at.
   */
  zeroSubclusters(guestCluster: number, first: number, end: number): boolean {
    if (!this.extended) throw new Error('model invariant: subclusters of a standard image');
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const old = entries.get(l2Index);
    if (old?.kind === 'compressed') return false;
    if (old?.kind === 'zero-alloc') throw new Error('model invariant: zero-alloc entry in an extended-L2 image');
    if (old?.kind === 'normal') {
      entries.set(l2Index, { ...old, subclusters: withSubclusters(subclustersOf(old), first, end, 'zero') });
    } else {
      entries.set(l2Index, { kind: 'zero-plain', subclusters: withSubclusters(old === undefined ? uniformSubclusters('unallocated') : subclustersOf(old), first, end, 'zero') });
    }
    return true;
  }

  /**
   * Guest discard of a whole cluster (discard_in_l2_slice, full_discard = false):
   * with a backing file an unallocated cluster of a version 3 image becomes
   * zero-plain too, so that the backing does not show through; with
   * subclusters so does one at host offset 0 with only some zero subclusters.
   */
  discard(guestCluster: number): void {
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    const old = entries.get(l2Index);
    const hidesBacking = this.base.backing !== undefined && this.base.options.version === 3;
    if (old === undefined || old.kind === 'zero-plain') {
      if (hidesBacking) entries.set(l2Index, this.zeroPlain());
      return;
    }
    this.release(old);
    if (this.base.options.version === 3) entries.set(l2Index, this.zeroPlain());
    else entries.delete(l2Index);
  }

  /** Shrink's full discard: the entry becomes unallocated whatever it was. */
  unallocate(guestCluster: number): void {
    const entries = this.tableFor(guestCluster);
    const l2Index = guestCluster % this.g.l2EntriesCount;
    this.release(entries.get(l2Index));
    entries.delete(l2Index);
  }

  /** Drops L1 entries from `l1Index` on (shrink of the L1's used part). */
  dropFrom(l1Index: number): void {
    for (let i = l1Index; i < this.l1.length; i++) {
      const own = this.privatized.get(i);
      const id = own?.id ?? this.l1[i]?.id;
      if (id !== undefined) this.addRef(this.counts.l2Tables, id, -1);
      this.privatized.delete(i);
    }
    this.l1.length = Math.min(this.l1.length, l1Index);
  }

  /** The state with this draft as its active view. */
  finish(options: ModelState['options'] = this.base.options): ModelState {
    const active = [...this.l1];
    for (const [l1Index, own] of this.privatized) active[l1Index] = { id: own.id, entries: own.entries };
    return { ...this.base, options, active, nextId: this.nextId };
  }

  /** The guest view of a cluster as a fresh buffer: its data where it reads data, zeros elsewhere. */
  private guestBytes(entry: L2Entry | undefined, guestCluster: number): Uint8Array {
    const clusterStart = guestCluster * this.g.clusterSize;
    if (entry === undefined) return readBacking(this.base.backing, clusterStart, clusterStart + this.g.clusterSize);
    const content = new Uint8Array(this.g.clusterSize);
    const size = this.g.subclusterSize;
    for (let at = 0; at < this.g.clusterSize; at += size) {
      const sub = subclusterState(entry, at / size);
      if (sub === 'allocated' && (entry.kind === 'normal' || entry.kind === 'compressed')) content.set(entry.data.bytes.subarray(at, at + size), at);
      else if (sub === 'unallocated' && this.base.backing !== undefined) content.set(readBacking(this.base.backing, clusterStart + at, clusterStart + at + size), at);
    }
    return content;
  }

  /** A zero-plain entry: the zero flag, or with subclusters all 32 zero at host offset 0. */
  private zeroPlain(): L2Entry {
    return this.extended ? { kind: 'zero-plain', subclusters: uniformSubclusters('zero') } : { kind: 'zero-plain' };
  }

  private tableFor(guestCluster: number): Map<number, L2Entry> {
    return this.privatize(Math.floor(guestCluster / this.g.l2EntriesCount));
  }

  private release(entry: L2Entry | undefined): void {
    if (entry !== undefined && entry.kind !== 'zero-plain') this.addRef(this.counts.dataClusters, entry.data.id, -1);
  }

  private addRef(map: Map<number, number>, id: number, delta: number): void {
    const n = (map.get(id) ?? 0) + delta;
    if (n < 0) throw new Error(`model invariant: refcount of identity ${id} below zero`);
    map.set(id, n);
  }

  private freshId(): number {
    return this.nextId++;
  }
}

function subclustersOf(entry: Extract<L2Entry, { kind: 'normal' | 'zero-plain' }>): Subclusters {
  if (entry.subclusters === undefined) throw new Error('model invariant: an extended-L2 entry without subclusters');
  return entry.subclusters;
}

/**
 * The subclusters after a write touched [first, end) of a cluster whose entry
 * was `old` (calculate_l2_meta, qcow2_alloc_cluster_link_l2): the touched ones
 * become allocated and the others keep their state, except that
 * - a compressed cluster is copied whole: all 32 allocated;
 * - a normal cluster copied to a new host cluster (shared, not COPIED) is
 *   copied from its first to its last allocated subcluster, so everything from
 *   min(first, first allocated) to max(end, last allocated + 1) is allocated.
 * Untouched zero subclusters stay zero, even in a new host cluster.
 */
function writtenSubclusters(old: L2Entry | undefined, inPlace: boolean, first: number, end: number): Subclusters {
  if (old === undefined) return withSubclusters(uniformSubclusters('unallocated'), first, end, 'allocated');
  switch (old.kind) {
    case 'compressed':
      return uniformSubclusters('allocated');
    case 'zero-plain':
      return withSubclusters(subclustersOf(old), first, end, 'allocated');
    case 'normal': {
      const span = inPlace ? undefined : allocatedSpan(subclustersOf(old));
      const from = Math.min(first, span?.first ?? first);
      const to = Math.max(end, span?.end ?? end);
      return withSubclusters(subclustersOf(old), from, to, 'allocated');
    }
    case 'zero-alloc':
      throw new Error('model invariant: zero-alloc entry in an extended-L2 image');
    default: {
      const never: never = old;
      throw new Error(`unknown entry ${JSON.stringify(never)}`);
    }
  }
}
