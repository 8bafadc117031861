// space: the image file holds no more clusters than the model's live data and
// metadata explain, after every operation, flushed or not. Refcounts cannot show
// this kind of leak: an allocator that never reuses freed clusters, reuses them
// only after a flush, or skips free clusters when it places a refcount block
// keeps every refcount right while the file grows.
//
// The check never flushes: it reads the file's length as the implementation
// left it (ImageDriver.fileLength), so an engine is measured as it runs. The
// bound, in clusters:
//
//   fileClusters <= peakLive + refcountClusters(fileClusters) + tableSlack + faultLeaks
//
// - fileClusters: ceil(file length / cluster size); a partial last cluster is
//   a live one (data written up to the end of the file).
// - live(op): the model's exact count of the clusters live before or after the
//   op (their union: an op may allocate before it frees, as COW, L1 growth and
//   a new snapshot table do, so both are in the file at its peak): the header,
//   every data cluster and L2 table (distinct identities, active and snapshots),
//   the active L1, each snapshot's L1 copy, and the snapshot table.
// - streamSlack(op): the model counts a compressed stream as one cluster, but
//   streams are packed one after another and one may straddle two host
//   clusters; when the stream before it dies, the cluster they shared stays.
//   So one more cluster per stream that died so far, at most one per live
//   stream, is added to live(op).
// - peakLive: the largest live(op) + streamSlack(op) of the sequence so far. The file does not
//   shrink when clusters are freed (only a shrinking resize truncates), so a
//   freed cluster is explained by the peak it was part of; a freed cluster must
//   be used again before the file grows, flush or no flush.
// - refcountClusters(F): the model has no refcount structures; a file of F
//   clusters holds at most one refcount block per range of R = clusterSize * 8 /
//   refcountBits clusters it reaches, and one cluster of refcount table while
//   those blocks fit one; past that, a grown table (QEMU's 1.5x headroom) and
//   the old one.
// - tableSlack: twice the largest table seen that must be contiguous and spans
//   more than one cluster (the active L1, a snapshot L1 copy, the snapshot
//   table). First fit puts such a table past holes smaller than it; the next
//   single-cluster allocations fill them. 0 while every table fits a cluster.
// - faultLeaks: in crashConsistency, the leaks the contract allows after a
//   fault: the sum over the crashes and I/O errors so far of the leaked
//   clusters the checker found right after each beyond those found after the
//   one before. A leak a later repair frees (a dirty lazy-refcounts image is
//   repaired as it opens) stays in the sum: it is a free cluster in the file
//   then, the model never counted it live, and it is explained once the
//   engine uses it again and the peak grows.
//   0 before any fault.
// Nothing else is slack: a new refcount block taking a cluster past the free
// ones before it, or a freed cluster not reused before the file grows, shows
// as soon as the file outgrows its peak by more than that.
//
// On a backing chain each qcow2 file is bounded the same way by its own
// layer's live clusters: the top after every op, a backing file when it
// becomes one (createOverlay moves the top's memory to it: its peak stays)
// and after every commit, which writes into it (and grows it as a resize
// would). A raw layer holds its guest bytes and nothing else (the structure
// check holds it to them byte for byte).
import { expectedRefcounts, geometry, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check, CheckEnv } from './check.js';
import { chainLayers } from './structure.js';

/** Contiguous tables may skip holes smaller than themselves: this many of the largest. */
export const spaceTableSlackFactor = 2;
/** Bytes of a snapshot table entry besides its ID and name: the fixed header and the 24 bytes of extra data QEMU 7.2 and the engine write. */
const snapshotEntryFixedBytes = 40 + 24;

/** What the check keeps between operations of one sequence. */
interface SpaceMemory {
  /** L1 entries of the active table: it only grows (exact growth, QEMU qcow2_grow_l1_table). */
  l1Entries: number;
  /** Snapshot ID -> L1 entries when it was taken. */
  readonly snapshotL1Entries: Map<string, number>;
  /** The model's live clusters after the previous op. */
  previous: LiveSet;
  peakLive: number;
  /** Largest contiguous multi-cluster table seen, in clusters. */
  tableMax: number;
  /** Largest fileClusters - (peakLive + refcountClusters) so far: how close the file came to the bound without its table slack. */
  excessMax: number;
  /** The leaks faults made so far (see faultLeaks above). */
  faultLeaks: number;
  /** Leaked clusters the checker found right after the last fault (FaultResult.leakedClusters). */
  leaksAfterLastFault: number;
  /** Compressed streams that died so far (streamSlack). */
  streamsDead: number;
}

/** The clusters the model says are live after one op, by kind. */
interface LiveSet {
  readonly dataIds: ReadonlySet<number>;
  /** The compressed streams among them (streamSlack). */
  readonly streamIds: ReadonlySet<number>;
  readonly l2Ids: ReadonlySet<number>;
  /** The active L1: a growth moves it even when its cluster count stays. */
  readonly l1Entries: number;
  readonly l1Clusters: number;
  /** Snapshot ID -> clusters of its L1 copy. */
  readonly snapshotL1Clusters: ReadonlyMap<string, number>;
  readonly snapshotTableClusters: number;
}

function clustersOf(bytes: number, cs: number): number {
  return Math.ceil(bytes / cs);
}

function liveSet(state: ModelState, m: SpaceMemory): LiveSet {
  const cs = 2 ** state.options.clusterBits;
  const counts = expectedRefcounts(state);
  const snapshotL1Clusters = new Map<string, number>();
  let tableBytes = 0;
  const encoder = new TextEncoder();
  for (const s of state.snapshots) {
    snapshotL1Clusters.set(s.id, clustersOf((m.snapshotL1Entries.get(s.id) ?? m.l1Entries) * 8, cs));
    tableBytes = Math.ceil((tableBytes + snapshotEntryFixedBytes + encoder.encode(s.id).length + encoder.encode(s.name).length) / 8) * 8;
  }
  const streamIds = new Set<number>();
  for (const l1 of [state.active, ...state.snapshots.map((s) => s.l1)]) {
    for (const table of l1) for (const e of table?.entries.values() ?? []) if (e.kind === 'compressed') streamIds.add(e.data.id);
  }
  return {
    dataIds: new Set(counts.dataClusters.keys()),
    streamIds,
    l2Ids: new Set(counts.l2Tables.keys()),
    l1Entries: m.l1Entries,
    l1Clusters: clustersOf(m.l1Entries * 8, cs),
    snapshotL1Clusters,
    snapshotTableClusters: clustersOf(tableBytes, cs),
  };
}

function unionSize<T>(a: ReadonlySet<T> | ReadonlyMap<T, unknown>, b: ReadonlySet<T> | ReadonlyMap<T, unknown>): number {
  let n = a.size;
  for (const key of b.keys()) if (!a.has(key)) n++;
  return n;
}

/** live(op): header, data, L2 tables, L1 tables and snapshot tables live before or after the op. */
function liveAcross(before: LiveSet, after: LiveSet): number {
  let snapshotL1 = 0;
  for (const [id, clusters] of before.snapshotL1Clusters) snapshotL1 += Math.max(clusters, after.snapshotL1Clusters.get(id) ?? 0);
  for (const [id, clusters] of after.snapshotL1Clusters) if (!before.snapshotL1Clusters.has(id)) snapshotL1 += clusters;
  // A changed snapshot list is a rewritten snapshot table: the new one is written before the old is freed.
  const snapshotsChanged = before.snapshotL1Clusters.size !== after.snapshotL1Clusters.size
    || [...after.snapshotL1Clusters.keys()].some((id) => !before.snapshotL1Clusters.has(id));
  const l1 = before.l1Entries === after.l1Entries ? after.l1Clusters : before.l1Clusters + after.l1Clusters;
  const snapshotTable = snapshotsChanged ? before.snapshotTableClusters + after.snapshotTableClusters : after.snapshotTableClusters;
  return 1 + unionSize(before.dataIds, after.dataIds) + unionSize(before.l2Ids, after.l2Ids) + l1 + snapshotL1 + snapshotTable;
}

/**
 * Refcount blocks and table a file of `fileClusters` may hold: one block per
 * range of R clusters it reaches, and the table those blocks need. A table
 * whose entries fit one cluster never grew (a created image has one cluster
 * of table for up to clusterSize / 8 blocks); past that it may have grown,
 * with QEMU's 1.5x headroom, and the old table is there until its clusters are
 * used again.
 */
export function refcountClustersFor(fileClusters: number, clusterBits: number, refcountBits: number): number {
  const cs = 2 ** clusterBits;
  const blocks = Math.ceil(fileClusters / ((cs * 8) / refcountBits));
  const tableClusters = blocks * 8 <= cs ? 1 : 2 * Math.ceil(((blocks + 2) * 1.5 * 8) / cs);
  return blocks + tableClusters;
}

function freshMemory(options: ImageOptions): SpaceMemory {
  const cs = 2 ** options.clusterBits;
  const l1Entries = Math.ceil(options.virtualSize / geometry(options).l1Coverage);
  const empty: LiveSet = { dataIds: new Set(), streamIds: new Set(), l2Ids: new Set(), l1Entries, l1Clusters: clustersOf(l1Entries * 8, cs), snapshotL1Clusters: new Map(), snapshotTableClusters: 0 };
  return { l1Entries, snapshotL1Entries: new Map(), previous: empty, peakLive: 0, tableMax: 0, excessMax: -Infinity, faultLeaks: 0, leaksAfterLastFault: 0, streamsDead: 0 };
}

/** The scratch key of the image's own memory (a backing file's is keyed by its name). */
const topKey = 'space';
/** The scratch key of the backing files' memories, by file name. */
const layersKey = 'space-layers';

function layerMemories(env: CheckEnv): Map<string, SpaceMemory> {
  let memories = env.scratch.get(layersKey) as Map<string, SpaceMemory> | undefined;
  if (memories === undefined) env.scratch.set(layersKey, (memories = new Map()));
  return memories;
}

/**
 * SpaceMemory.excessMax of one sequence's scratch (for tests of tightness):
 * of the image, or of the backing file named `backingFile`; undefined before
 * the first op (or while that file is not judged).
 */
export function spaceExcessMax(scratch: ReadonlyMap<string, unknown>, backingFile?: string): number | undefined {
  if (backingFile === undefined) return (scratch.get(topKey) as SpaceMemory | undefined)?.excessMax;
  return (scratch.get(layersKey) as Map<string, SpaceMemory> | undefined)?.get(backingFile)?.excessMax;
}

/**
 * The backing files after `op`: a new one (createOverlay) takes the top's
 * memory and the top starts afresh as the overlay created; a commit is judged in the file it wrote
 * into; files no longer in the chain (rebase) are forgotten.
 */
async function judgeLayers(env: CheckEnv, op: Op, when: string): Promise<void> {
  if (op.kind !== 'createOverlay' && op.kind !== 'commit' && op.kind !== 'rebase') return;
  const memories = layerMemories(env);
  const layers = await chainLayers(env, when);
  if (op.kind === 'createOverlay') {
    const top = env.scratch.get(topKey) as SpaceMemory | undefined;
    const below = layers[0];
    if (top !== undefined && below !== undefined && below.layer.format === 'qcow2') memories.set(below.file.name, top);
    env.scratch.set(topKey, freshMemory(env.state.options));
  }
  const names = new Set(layers.map((l) => l.file.name));
  for (const name of memories.keys()) if (!names.has(name)) memories.delete(name);
  for (const { file, bytes, layer } of layers) {
    if (layer.format === 'raw') continue;
    let m = memories.get(file.name);
    if (m === undefined) memories.set(file.name, (m = freshMemory(layer.image.options)));
    if (op.kind === 'commit') {
      account(m, layer.image);
      judge(m, layer.image.options, bytes.length, `${when}: the backing file ${file.name}`);
    }
  }
}

/** Counts the model's live clusters of `state` into the peak (the op before it is `m.previous`). */
function account(m: SpaceMemory, state: ModelState): void {
  m.l1Entries = Math.max(m.l1Entries, Math.ceil(state.options.virtualSize / geometry(state.options).l1Coverage));
  for (const s of state.snapshots) if (!m.snapshotL1Entries.has(s.id)) m.snapshotL1Entries.set(s.id, m.l1Entries);
  const now = liveSet(state, m);
  for (const id of m.previous.streamIds) if (!now.streamIds.has(id)) m.streamsDead++;
  // streamSlack: a stream packed after one that died keeps that one's host cluster
  const streamSlack = Math.min(unionSize(m.previous.streamIds, now.streamIds), m.streamsDead);
  m.peakLive = Math.max(m.peakLive, liveAcross(m.previous, now) + streamSlack);
  m.previous = now;
  // Snapshot L1 copies are never larger than the active L1 (it only grows).
  for (const table of [now.l1Clusters, now.snapshotTableClusters]) if (table > 1) m.tableMax = Math.max(m.tableMax, table);
}

/** The image's own memory; the image as created (its L1 before the first op, which may grow it) before the first op. */
function topMemory(env: CheckEnv): SpaceMemory {
  let m = env.scratch.get(topKey) as SpaceMemory | undefined;
  if (m === undefined) env.scratch.set(topKey, (m = freshMemory(env.options)));
  return m;
}

/** Bounds one qcow2 file of `fileSize` bytes by the peak counted into `m` (`what`: the file, as the message names it). */
function judge(m: SpaceMemory, options: ImageOptions, fileSize: number, what: string): void {
  const { clusterBits, refcountBits } = options;
  const fileClusters = clustersOf(fileSize, 2 ** clusterBits);
  const refcountClusters = refcountClustersFor(fileClusters, clusterBits, refcountBits);
  const tableSlack = spaceTableSlackFactor * m.tableMax;
  const bound = m.peakLive + refcountClusters + tableSlack + m.faultLeaks;
  m.excessMax = Math.max(m.excessMax, fileClusters - (m.peakLive + refcountClusters + m.faultLeaks));
  if (fileClusters > bound) {
    throw new PropertyViolation(
      'space',
      `${what} has ${fileClusters} clusters (${fileSize} bytes) but at most ${bound} are explained ` +
        `(peak of live clusters ${m.peakLive}, refcount structures for that file ${refcountClusters}, ` +
        `contiguous-table slack ${tableSlack}${m.faultLeaks > 0 ? `, clusters faults leaked ${m.faultLeaks}` : ''})`,
    );
  }
}

export const spaceCheck: Check = {
  name: 'space',
  async afterOp(env, op, outcome) {
    const when = `after ${formatStep(op)}`;
    if (outcome.ok) await judgeLayers(env, op, when);
    const m = topMemory(env);
    account(m, env.state);
    judge(m, env.state.options, await env.driver.fileLength(), `${when}: the file`);
  },
  /**
   * The op inside the fault counts into the peak (its clusters may be in the
   * file); the state the fault left (a crash state adopted under new
   * identities) becomes the one the next op is counted from; the leaks the
   * checker found after the fault beyond those after the one before are
   * allowed, and no more.
   */
  async afterFault(env, fault) {
    const m = topMemory(env);
    account(m, fault.reached);
    m.previous = liveSet(env.state, m);
    m.peakLive = Math.max(m.peakLive, liveAcross(m.previous, m.previous));
    m.faultLeaks += Math.max(0, fault.leakedClusters - m.leaksAfterLastFault);
    m.leaksAfterLastFault = fault.leakedClusters;
    judge(m, env.state.options, await env.driver.fileLength(), `after ${formatStep(fault.step)}: the file`);
  },
};
