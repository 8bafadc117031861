// The model's state: qcow2's abstract structure without host offsets.
// An L2 table and a data cluster are *identities* (an id), standing for the host
// cluster QEMU would allocate; sharing an identity is sharing a host cluster.
// Everything is immutable: a step builds new objects for what it touches and
// reuses the rest (structural sharing), so old states stay valid.
import type { ImageOptions } from './ops.js';
import { subclustersPerCluster, type SubclusterState, type Subclusters } from './subclusters.js';

export type ClusterKind = 'unallocated' | 'zero-plain' | 'zero-alloc' | 'normal' | 'compressed';

/**
 * A host data cluster, or a compressed stream (one guest cluster's bytes packed
 * into a byte range of host space): its identity and its full cluster of bytes.
 * A stream's identity stands for its byte range, not for a host cluster: how
 * streams share host clusters is the engine's packing, outside the model.
 */
export interface DataCluster {
  readonly id: number;
  /** `clusterSize` bytes; never mutated after creation. Meaningful for guest reads only while normal or compressed. */
  readonly bytes: Uint8Array;
}

/**
 * One L2 entry that is not unallocated (unallocated entries are absent from the map).
 * In an extended-L2 image (ImageOptions.extendedL2) a cluster has no zero flag:
 * `subclusters` is present exactly on zero-plain and normal entries, zero-alloc
 * never occurs, and
 * - zero-plain is host offset 0 with at least one zero subcluster and none
 *   allocated (all unallocated is an absent entry);
 * - normal is a host cluster whose subclusters may be in any state (all zero is
 *   what a standard image calls zero-alloc).
 */
export type L2Entry =
  | { readonly kind: 'zero-plain'; readonly subclusters?: Subclusters }
  | { readonly kind: 'zero-alloc'; readonly data: DataCluster }
  | { readonly kind: 'normal'; readonly data: DataCluster; readonly subclusters?: Subclusters }
  /** A compressed stream; never COPIED, never written in place. */
  | { readonly kind: 'compressed'; readonly data: DataCluster };

export interface L2Table {
  readonly id: number;
  /** L2 index → entry; an absent index is unallocated. */
  readonly entries: ReadonlyMap<number, L2Entry>;
}

/** L1 index → L2 table; undefined = L1 entry 0. Its length is not significant. */
export type L1Table = readonly (L2Table | undefined)[];

export interface Snapshot {
  readonly id: string;
  readonly name: string;
  /** Virtual size when the snapshot was taken (extra data `disk_size`). */
  readonly diskSize: number;
  readonly l1: L1Table;
}

/**
 * The image a qcow2 layer reads through to for its unallocated clusters
 * (docs/semantics.md, Backing chains): another qcow2 layer with its own state
 * and chain, or a raw file whose bytes are the guest view and whose length is
 * its size. A backing layer is never written by guest I/O on the overlay; only
 * `commit` changes one.
 */
export type BackingLayer =
  | { readonly format: 'qcow2'; readonly image: ModelState }
  | { readonly format: 'raw'; readonly bytes: Uint8Array };

export interface ModelState {
  /** Geometry; `virtualSize` is the current size. */
  readonly options: ImageOptions;
  /** The backing file; absent for an image without one (every image before chains). */
  readonly backing?: BackingLayer;
  readonly active: L1Table;
  /** In table order (the order QEMU keeps them). */
  readonly snapshots: readonly Snapshot[];
  /** Next fresh identity for an L2 table or data cluster. */
  readonly nextId: number;
}

/** Quantities derived from the options (digest §1). */
export interface Geometry {
  readonly clusterSize: number;
  /** clusterSize / 32 with extended L2 entries, else clusterSize (one "subcluster" per cluster). */
  readonly subclusterSize: number;
  /** clusterSize / 16 with extended L2 entries (128-bit entries), else clusterSize / 8. */
  readonly l2EntriesCount: number;
  /** Guest bytes covered by one L1 entry. */
  readonly l1Coverage: number;
  /** 2^refcountBits − 1; Infinity when that is beyond 2^53 (no count can get there). */
  readonly refcountMax: number;
}

export function geometry(options: ImageOptions): Geometry {
  const clusterSize = 2 ** options.clusterBits;
  const extended = options.extendedL2 === true;
  const l2EntriesCount = clusterSize / (extended ? 16 : 8);
  return {
    clusterSize,
    subclusterSize: extended ? clusterSize / subclustersPerCluster : clusterSize,
    l2EntriesCount,
    l1Coverage: clusterSize * l2EntriesCount,
    refcountMax: options.refcountBits >= 53 ? Infinity : 2 ** options.refcountBits - 1,
  };
}

/** Number of guest clusters that hold the first `size` bytes. */
export function clustersFor(size: number, clusterSize: number): number {
  return Math.ceil(size / clusterSize);
}

/** The L2 entry for a guest cluster in an L1 table (undefined = unallocated). */
export function entryAt(l1: L1Table, g: Geometry, guestCluster: number): L2Entry | undefined {
  const table = l1[Math.floor(guestCluster / g.l2EntriesCount)];
  return table?.entries.get(guestCluster % g.l2EntriesCount);
}

export function kindOf(entry: L2Entry | undefined): ClusterKind {
  return entry === undefined ? 'unallocated' : entry.kind;
}

/**
 * What the guest sees in subcluster `index` of a cluster with this entry: a
 * standard entry is one state for all its subclusters (normal and compressed
 * clusters are data, zero kinds are zero), an extended one has its own.
 */
export function subclusterState(entry: L2Entry | undefined, index: number): SubclusterState {
  if (entry === undefined) return 'unallocated';
  switch (entry.kind) {
    case 'compressed':
      return 'allocated';
    case 'zero-alloc':
      return 'zero';
    case 'zero-plain':
      return entry.subclusters?.[index] ?? 'zero';
    case 'normal':
      return entry.subclusters?.[index] ?? 'allocated';
    default: {
      const never: never = entry;
      throw new Error(`unknown entry ${JSON.stringify(never)}`);
    }
  }
}

/** Guest size of a backing layer in bytes (reads at or past it are zeros). */
export function backingSize(layer: BackingLayer): number {
  return layer.format === 'raw' ? layer.bytes.length : layer.image.options.virtualSize;
}

/** The chain below `state`, nearest first: depth 1, 2, … (docs/semantics.md, Backing chains). */
export function backingLayers(state: ModelState): BackingLayer[] {
  const out: BackingLayer[] = [];
  for (let layer = state.backing; layer !== undefined; layer = layer.format === 'qcow2' ? layer.image.backing : undefined) out.push(layer);
  return out;
}
