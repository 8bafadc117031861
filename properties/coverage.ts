// What a run actually exercised, so that a green gate can be told apart from a
// green gate that never reached a corner: ops by kind, outcomes, the kind of
// every target cluster before each op (with "-shared" when a snapshot shares
// it), refcount-table and L1 growths seen in the header, the most snapshots
// alive at once, how snapshot commands named their snapshot (names that look
// like IDs, duplicates, the empty name), L1 growth across a cluster of the L1
// table while snapshots are alive and what followed, the image options drawn,
// and the layout of compressed streams in the sampled images (straddling
// streams, host clusters shared by streams).
import {
  expectedRefcounts,
  findSnapshotByIdOrName,
  findSnapshotByName,
  guestClusterKind,
  type DecodedImage,
  type ImageOptions,
  type ModelState,
  type Outcome,
} from '../model/index.js';
import type { Step } from './steps.js';
import type { SwarmWeights } from './arbitraries/swarm.js';

export interface Coverage {
  sequences: number;
  operations: number;
  opsByKind: Record<string, number>;
  outcomes: Record<string, number>;
  clusterKinds: Record<string, number>;
  refcountTableGrowths: number;
  l1Growths: number;
  snapshotsAliveMax: number;
  /** How snapshot commands named their snapshot, by command (`create:id-like`, `delete:id-only`, …): see snapshotLookupLabel. */
  snapshotLookups: Record<string, number>;
  /**
   * Resizes that made the L1 table need one more cluster while snapshots were
   * alive (`crossed`), and successful reverts and deletes after one in the same
   * sequence (`then-revert`, `then-delete`).
   */
  l1ClusterCrossings: Record<string, number>;
  versions: Record<string, number>;
  clusterBits: Record<string, number>;
  refcountBits: Record<string, number>;
  /** Sequences by compression_type (zlib, zstd). */
  compressionTypes: Record<string, number>;
  lazyRefcounts: number;
  /** How many sequences had each command kind switched off by the swarm. */
  swarmOff: Record<string, number>;
  /**
   * Summed over the sampled images: `streams` (distinct compressed streams),
   * `straddling` (streams that touch two host clusters), `sharedHostClusters`
   * (host clusters touched by several streams).
   */
  compressedLayout: Record<string, number>;
}

export function emptyCoverage(): Coverage {
  return {
    sequences: 0,
    operations: 0,
    opsByKind: {},
    outcomes: {},
    clusterKinds: {},
    refcountTableGrowths: 0,
    l1Growths: 0,
    snapshotsAliveMax: 0,
    snapshotLookups: {},
    l1ClusterCrossings: {},
    versions: {},
    clusterBits: {},
    refcountBits: {},
    compressionTypes: {},
    lazyRefcounts: 0,
    swarmOff: {},
    compressedLayout: {},
  };
}

function bump(histogram: Record<string, number>, key: string, by = 1): void {
  histogram[key] = (histogram[key] ?? 0) + by;
}

export function mergeCoverage(into: Coverage, from: Coverage): Coverage {
  into.sequences += from.sequences;
  into.operations += from.operations;
  into.refcountTableGrowths += from.refcountTableGrowths;
  into.l1Growths += from.l1Growths;
  into.snapshotsAliveMax = Math.max(into.snapshotsAliveMax, from.snapshotsAliveMax);
  into.lazyRefcounts += from.lazyRefcounts;
  const histograms = [
    'opsByKind', 'outcomes', 'clusterKinds', 'snapshotLookups', 'l1ClusterCrossings', 'versions', 'clusterBits', 'refcountBits', 'compressionTypes', 'swarmOff', 'compressedLayout',
  ] as const;
  for (const key of histograms) {
    for (const [k, v] of Object.entries(from[key])) bump(into[key], k, v);
  }
  return into;
}

/** Guest clusters that an op on [offset, offset + length) targets, clamped to the disk. */
function targetClusters(state: ModelState, offset: number, length: number): number[] {
  const cs = 2 ** state.options.clusterBits;
  const end = Math.min(offset + length, state.options.virtualSize);
  const out: number[] = [];
  for (let c = Math.floor(offset / cs); c * cs < end; c++) out.push(c);
  return out;
}

export function recordSequenceStart(cov: Coverage, options: ImageOptions, swarm: SwarmWeights | undefined): void {
  cov.sequences += 1;
  bump(cov.versions, `v${options.version}`);
  bump(cov.clusterBits, String(options.clusterBits));
  bump(cov.refcountBits, String(options.refcountBits));
  bump(cov.compressionTypes, options.compressionType ?? 'zlib');
  if (options.lazyRefcounts) cov.lazyRefcounts += 1;
  if (swarm !== undefined) for (const [k, w] of Object.entries(swarm)) if (w === 0) bump(cov.swarmOff, k);
}

/** Called before the step is applied: classifies the clusters it targets in the state it will see. */
export function recordStep(cov: Coverage, state: ModelState, step: Step): void {
  cov.operations += 1;
  bump(cov.opsByKind, step.kind);
  if (step.kind === 'snapshotCreate' || step.kind === 'snapshotRevert' || step.kind === 'snapshotDelete') {
    bump(cov.snapshotLookups, snapshotLookupLabel(state, step));
  }
  if (step.kind !== 'write' && step.kind !== 'writeCompressed' && step.kind !== 'writeZeroes' && step.kind !== 'discard') return;
  const clusters = targetClusters(state, step.offset, step.length);
  if (clusters.length === 0) return;
  const shared = state.snapshots.length > 0 ? expectedRefcounts(state).dataClusters : undefined;
  const l2Entries = 2 ** state.options.clusterBits / 8;
  for (const c of clusters) {
    const kind = guestClusterKind(state, c);
    let label: string = kind;
    if (shared !== undefined && (kind === 'normal' || kind === 'zero-alloc' || kind === 'compressed')) {
      const entry = state.active[Math.floor(c / l2Entries)]?.entries.get(c % l2Entries);
      if (entry !== undefined && entry.kind !== 'zero-plain' && (shared.get(entry.data.id) ?? 0) > 1) label = `${kind}-shared`;
    }
    bump(cov.clusterKinds, label);
  }
}

export function recordOutcome(cov: Coverage, outcome: Outcome, state: ModelState): void {
  bump(cov.outcomes, outcome.ok ? 'ok' : outcome.error);
  cov.snapshotsAliveMax = Math.max(cov.snapshotsAliveMax, state.snapshots.length);
}

/** A snapshot refused because compressed streams share a host cluster (the model's own count stayed within the limit). */
export function recordPackedOverflow(cov: Coverage): void {
  bump(cov.outcomes, 'refcount-overflow:packed-streams');
}

/** Header fields whose change marks a growth (compared between consecutive samples). */
export interface HeaderSample {
  readonly l1Size: number;
  readonly refcountTableClusters: number;
  readonly refcountTableOffset: number;
}

export function recordHeaderChange(cov: Coverage, before: HeaderSample, after: HeaderSample): void {
  if (after.l1Size > before.l1Size) cov.l1Growths += 1;
  if (after.refcountTableClusters > before.refcountTableClusters || after.refcountTableOffset !== before.refcountTableOffset) {
    cov.refcountTableGrowths += 1;
  }
}

/** Compressed streams in a decoded image: how many, how many straddle two host clusters, how many host clusters hold several. */
export function recordCompressedLayout(cov: Coverage, decoded: DecodedImage): void {
  const cs = decoded.header.clusterSize;
  const streams = new Map<number, number>();
  for (const table of decoded.l2Tables.values()) {
    for (const e of table) if (e.kind === 'compressed' && e.host !== undefined && e.length !== undefined) streams.set(e.host, e.length);
  }
  if (streams.size === 0) return;
  const perHostCluster = new Map<number, number>();
  let straddling = 0;
  for (const [host, length] of streams) {
    const first = Math.floor(host / cs);
    const last = Math.floor((host + length - 1) / cs);
    if (last > first) straddling += 1;
    for (let c = first; c <= last; c++) perHostCluster.set(c, (perHostCluster.get(c) ?? 0) + 1);
  }
  bump(cov.compressedLayout, 'streams', streams.size);
  bump(cov.compressedLayout, 'straddling', straddling);
  bump(cov.compressedLayout, 'sharedHostClusters', [...perHostCluster.values()].filter((n) => n > 1).length);
}

/**
 * How a snapshot command names its snapshot in `state`. create: `word`,
 * `id-like` (all digits), `empty`, or `duplicate` (the name is taken). revert
 * and delete: `id-and-name-differ` (the name is one snapshot's ID and another's
 * name: -a and -d pick different snapshots), `id-only` (an ID but no name: -a
 * finds it, -d does not), `duplicate-name`, `empty-name`, `name`, `missing`.
 */
export function snapshotLookupLabel(
  state: ModelState,
  step: { readonly kind: 'snapshotCreate' | 'snapshotRevert' | 'snapshotDelete'; readonly name: string },
): string {
  const name = step.name;
  const named = state.snapshots.filter((s) => s.name === name).length;
  if (step.kind === 'snapshotCreate') {
    if (named > 0) return 'create:duplicate';
    return `create:${name === '' ? 'empty' : /^\d+$/.test(name) ? 'id-like' : 'word'}`;
  }
  const command = step.kind === 'snapshotRevert' ? 'revert' : 'delete';
  const byName = findSnapshotByName(state, name);
  const byId = findSnapshotByIdOrName(state, name);
  let label: string;
  if (byId >= 0 && byName >= 0 && byId !== byName) label = 'id-and-name-differ';
  else if (byId >= 0 && byName < 0) label = 'id-only';
  else if (named > 1) label = 'duplicate-name';
  else if (byName >= 0) label = name === '' ? 'empty-name' : 'name';
  else label = 'missing';
  return `${command}:${label}`;
}

/** Per sequence: the L1 table's entries so far (l1_size only grows) and whether it crossed a cluster with snapshots alive. */
export interface L1Memory {
  l1Entries: number;
  crossed: boolean;
}

function l1EntriesFor(options: ImageOptions): number {
  const cs = 2 ** options.clusterBits;
  return Math.ceil(options.virtualSize / (cs * (cs / 8)));
}

export function l1Memory(options: ImageOptions): L1Memory {
  return { l1Entries: l1EntriesFor(options), crossed: false };
}

/** Called after a step with the states around it: counts the L1-cluster corner (see Coverage.l1ClusterCrossings). */
export function recordL1Corner(cov: Coverage, memory: L1Memory, before: ModelState, step: Step, outcome: Outcome, after: ModelState): void {
  if (!outcome.ok) return;
  const entries = Math.max(memory.l1Entries, l1EntriesFor(after.options));
  const entriesPerCluster = 2 ** after.options.clusterBits / 8;
  if (Math.ceil(entries / entriesPerCluster) > Math.ceil(memory.l1Entries / entriesPerCluster) && before.snapshots.length > 0) {
    memory.crossed = true;
    bump(cov.l1ClusterCrossings, 'crossed');
  }
  memory.l1Entries = entries;
  if (memory.crossed && step.kind === 'snapshotRevert') bump(cov.l1ClusterCrossings, 'then-revert');
  if (memory.crossed && step.kind === 'snapshotDelete') bump(cov.l1ClusterCrossings, 'then-delete');
}
