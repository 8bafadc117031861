// What a run actually exercised, so that a green gate can be told apart from a
// green gate that never reached a corner: ops by kind, outcomes, the kind of
// every target cluster before each op (with "-shared" when a snapshot shares
// it), refcount-table and L1 growths seen in the header, the most snapshots
// alive at once, the image options drawn, and the layout of compressed streams
// in the sampled images (straddling streams, host clusters shared by streams).
import { expectedRefcounts, guestClusterKind, type DecodedImage, type ImageOptions, type ModelState, type Outcome } from '../model/index.js';
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
  versions: Record<string, number>;
  clusterBits: Record<string, number>;
  refcountBits: Record<string, number>;
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
    versions: {},
    clusterBits: {},
    refcountBits: {},
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
  for (const key of ['opsByKind', 'outcomes', 'clusterKinds', 'versions', 'clusterBits', 'refcountBits', 'swarmOff', 'compressedLayout'] as const) {
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
  if (options.lazyRefcounts) cov.lazyRefcounts += 1;
  if (swarm !== undefined) for (const [k, w] of Object.entries(swarm)) if (w === 0) bump(cov.swarmOff, k);
}

/** Called before the step is applied: classifies the clusters it targets in the state it will see. */
export function recordStep(cov: Coverage, state: ModelState, step: Step): void {
  cov.operations += 1;
  bump(cov.opsByKind, step.kind);
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
