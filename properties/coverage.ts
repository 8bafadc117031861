// What a run actually exercised, so that a green gate can be told apart from a
// green gate that never reached a corner: ops by kind, outcomes, the kind of
// every target cluster before each op (with "-shared" when a snapshot shares
// it), refcount-table and L1 growths seen in the header, the most snapshots
// alive at once, how snapshot commands named their snapshot (names that look
// like IDs, duplicates, the empty name), L1 growth across a cluster of the L1
// table while snapshots are alive and what followed, the image options drawn,
// and the layout of compressed streams in the sampled images (straddling
// streams, host clusters shared by streams). In extended-L2 images: the state of
// every target subcluster, clusters whose subclusters are in different states
// (kind `mixed`), partial-subcluster copy-on-write and one-subcluster ranges.
import {
  backingLayers,
  chainPieces,
  expectedRefcounts,
  findSnapshotByIdOrName,
  findSnapshotByName,
  geometry,
  guestClusterKind,
  subclusterState,
  subclustersPerCluster,
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
  /** Sequences on extended-L2 images. */
  extendedL2: number;
  /**
   * Extended-L2 images only: target subclusters by their state before the op
   * (`allocated`, `zero`, `unallocated`), `mixed-clusters` (target clusters
   * whose subclusters are not all in one state), `partial-cow` (writes that
   * start or end inside a subcluster QEMU copies the rest of: not allocated,
   * or in a compressed or shared cluster) and `one-subcluster` (write, zero or
   * discard ranges inside a single subcluster).
   */
  subclusters: Record<string, number>;
  /** How many sequences had each command kind switched off by the swarm. */
  swarmOff: Record<string, number>;
  /**
   * Summed over the sampled images: `streams` (distinct compressed streams),
   * `straddling` (streams that touch two host clusters), `sharedHostClusters`
   * (host clusters touched by several streams).
   */
  compressedLayout: Record<string, number>;
  /**
   * Faults (properties/faults/fault-coverage.ts): `crash:ROLE` for each
   * metadata role among the writes a crash may lose, `ioError:ROLE` for the
   * role of the access an I/O error failed, and `crash@OP` / `ioError@OP` by the
   * operation interrupted.
   */
  faults: Record<string, number>;
  /**
   * Backing chains: `read-through:depth-N` (read steps, and the whole-disk
   * reads at the end of a sequence, whose bytes came in part from the layer N
   * down), `cow-from-backing` (clusters a write or
   * write-zeroes copied on write from backing data), `zero-over-backing`
   * (whole clusters write-zeroes or discard turned into zero clusters over
   * backing data), `overlay:qcow2|raw`, `rebase:safe|unsafe`, `commit`
   * (successful ones), `partial-zero-over-backing` (write-zeroes on part of
   * such a cluster), and `sequences-at-depth:N` (sequences whose chain was N
   * backing files deep at some point).
   */
  chains: Record<string, number>;
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
    extendedL2: 0,
    subclusters: {},
    swarmOff: {},
    compressedLayout: {},
    faults: {},
    chains: {},
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
  into.extendedL2 += from.extendedL2;
  const histograms = [
    'opsByKind', 'outcomes', 'clusterKinds', 'snapshotLookups', 'l1ClusterCrossings', 'versions', 'clusterBits', 'refcountBits', 'compressionTypes', 'swarmOff', 'compressedLayout', 'subclusters', 'faults', 'chains',
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
  if (options.extendedL2 === true) cov.extendedL2 += 1;
  if (swarm !== undefined) for (const [k, w] of Object.entries(swarm)) if (w === 0) bump(cov.swarmOff, k);
}

/** Called before the step is applied: classifies the clusters it targets in the state it will see. */
export function recordStep(cov: Coverage, state: ModelState, step: Step): void {
  cov.operations += 1;
  bump(cov.opsByKind, step.kind);
  if (step.kind === 'snapshotCreate' || step.kind === 'snapshotRevert' || step.kind === 'snapshotDelete') {
    bump(cov.snapshotLookups, snapshotLookupLabel(state, step));
  }
  recordChainStep(cov, state, step);
  if (step.kind !== 'write' && step.kind !== 'writeCompressed' && step.kind !== 'writeZeroes' && step.kind !== 'discard') return;
  const clusters = targetClusters(state, step.offset, step.length);
  if (clusters.length === 0) return;
  const shared = state.snapshots.length > 0 ? expectedRefcounts(state).dataClusters : undefined;
  const g = geometry(state.options);
  const isShared = (c: number) => {
    const entry = state.active[Math.floor(c / g.l2EntriesCount)]?.entries.get(c % g.l2EntriesCount);
    return shared !== undefined && entry !== undefined && entry.kind !== 'zero-plain' && (shared.get(entry.data.id) ?? 0) > 1;
  };
  for (const c of clusters) {
    const kind = guestClusterKind(state, c);
    const mixed = state.options.extendedL2 === true && recordSubclusters(cov, state, c);
    bump(cov.clusterKinds, `${mixed ? 'mixed' : kind}${isShared(c) ? '-shared' : ''}`);
  }
  if (state.options.extendedL2 !== true) return;
  const sc = g.subclusterSize;
  const end = Math.min(step.offset + step.length, state.options.virtualSize);
  if (step.kind !== 'writeCompressed' && Math.floor(step.offset / sc) === Math.floor((end - 1) / sc)) bump(cov.subclusters, 'one-subcluster');
  if (step.kind !== 'write') return;
  const copiesRest = (at: number) => {
    const c = Math.floor(at / g.clusterSize);
    const entry = state.active[Math.floor(c / g.l2EntriesCount)]?.entries.get(c % g.l2EntriesCount);
    return entry?.kind === 'compressed' || isShared(c) || subclusterState(entry, Math.floor((at % g.clusterSize) / sc)) !== 'allocated';
  };
  if ((step.offset % sc !== 0 && copiesRest(step.offset)) || (end % sc !== 0 && end !== state.options.virtualSize && copiesRest(end - 1))) {
    bump(cov.subclusters, 'partial-cow');
  }
}

/** Counts the states of guest cluster `c`'s subclusters; true when they are not all one state. */
function recordSubclusters(cov: Coverage, state: ModelState, c: number): boolean {
  const g = geometry(state.options);
  const entry = state.active[Math.floor(c / g.l2EntriesCount)]?.entries.get(c % g.l2EntriesCount);
  const seen = new Set<string>();
  for (let i = 0; i < subclustersPerCluster; i++) {
    const s = subclusterState(entry, i);
    seen.add(s);
    bump(cov.subclusters, s);
  }
  if (seen.size > 1) bump(cov.subclusters, 'mixed-clusters');
  return seen.size > 1;
}

/** Where a step meets the backing chain, in the state before it (see Coverage.chains). */
function recordChainStep(cov: Coverage, state: ModelState, step: Step): void {
  if (state.backing === undefined) return;
  const size = state.options.virtualSize;
  if (step.kind !== 'read' && step.kind !== 'write' && step.kind !== 'writeZeroes' && step.kind !== 'discard') return;
  const end = Math.min(step.offset + step.length, size);
  if (end <= step.offset) return;
  if (step.kind === 'read') {
    recordChainRead(cov, state, step.offset, end - step.offset);
    return;
  }
  const cs = 2 ** state.options.clusterBits;
  for (const c of targetClusters(state, step.offset, step.length)) {
    if (guestClusterKind(state, c) !== 'unallocated') continue;
    const clusterEnd = Math.min(size, (c + 1) * cs);
    const backingData = chainPieces(state, c * cs, clusterEnd - c * cs).some((p) => p.kind === 'data');
    if (!backingData) continue;
    const whole = step.offset <= c * cs && end >= clusterEnd;
    if (step.kind === 'write' && !whole) bump(cov.chains, 'cow-from-backing');
    else if (step.kind !== 'write' && whole && state.options.version === 3) bump(cov.chains, 'zero-over-backing');
    else if (step.kind === 'writeZeroes' && !whole) bump(cov.chains, 'partial-zero-over-backing');
  }
}

/** A guest read of [offset, offset + length) (inside the disk): the depths below the image its bytes came from. */
export function recordChainRead(cov: Coverage, state: ModelState, offset: number, length: number): void {
  if (state.backing === undefined || length === 0) return;
  const depths = new Set(chainPieces(state, offset, length).filter((p) => p.kind === 'data' && p.depth > 0).map((p) => p.depth));
  for (const depth of depths) bump(cov.chains, `read-through:depth-${depth}`);
}

export function recordOutcome(cov: Coverage, outcome: Outcome, state: ModelState, step?: Step): void {
  bump(cov.outcomes, outcome.ok ? 'ok' : outcome.error);
  cov.snapshotsAliveMax = Math.max(cov.snapshotsAliveMax, state.snapshots.length);
  if (!outcome.ok || step === undefined) return;
  if (step.kind === 'createOverlay') bump(cov.chains, `overlay:${step.backingFormat}`);
  if (step.kind === 'rebase') bump(cov.chains, `rebase:${step.unsafe ? 'unsafe' : 'safe'}`);
  if (step.kind === 'commit') bump(cov.chains, 'commit');
  const depth = backingLayers(state).length;
  if (depth > 0) cov.chains[`sequences-at-depth:${depth}`] = 1;
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
  return Math.ceil(options.virtualSize / geometry(options).l1Coverage);
}

export function l1Memory(options: ImageOptions): L1Memory {
  return { l1Entries: l1EntriesFor(options), crossed: false };
}

/** Called after a step with the states around it: counts the L1-cluster corner (see Coverage.l1ClusterCrossings). */
export function recordL1Corner(cov: Coverage, memory: L1Memory, before: ModelState, step: Step, outcome: Outcome, after: ModelState): void {
  if (!outcome.ok) return;
  if (step.kind === 'createOverlay') {
    // a new image: its own L1 table
    memory.l1Entries = l1EntriesFor(after.options);
    memory.crossed = false;
    return;
  }
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
