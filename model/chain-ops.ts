// Backing chains: creating an overlay, rebase (safe and unsafe) and commit
// (docs/semantics.md, Backing chains). Each is built from the guest rules of
// guest-ops.ts applied to one layer, as qemu-img itself drives them through
// the block layer.
import { ok, refuse, resize, writeData, writeZeroes, type StepResult } from './guest-ops.js';
import { read, readBacking } from './read.js';
import { backingLayers, backingSize, clustersFor, entryAt, geometry, type BackingLayer, type ModelState } from './state.js';
import { validateOptions } from './options.js';
import { ActiveDraft } from './active-draft.js';
import type { CommitOp, CreateOverlayOp, RebaseOp } from './ops.js';

/** The state with `backing` as its backing file (none when undefined). */
function withBacking(state: ModelState, backing: BackingLayer | undefined): ModelState {
  const { backing: _old, ...rest } = state;
  return backing === undefined ? rest : { ...rest, backing };
}

/** `qemu-img create -b TOP -F FORMAT`: a new empty image over the current one (CreateOverlayOp). */
export function createOverlay(state: ModelState, op: CreateOverlayOp): StepResult {
  try {
    validateOptions(op.options);
  } catch (error) {
    return refuse(state, 'invalid-argument', error instanceof Error ? error.message : String(error));
  }
  const backing: BackingLayer =
    op.backingFormat === 'raw' ? { format: 'raw', bytes: read(state, 0, state.options.virtualSize) } : { format: 'qcow2', image: state };
  return { state: { options: { ...op.options }, active: [], snapshots: [], nextId: 1, backing }, outcome: ok };
}

/** qemu-img rebase compares the old and new backing files 512-byte sector by sector (compare_buffers). */
const rebaseSectorBytes = 512;

/**
 * `qemu-img rebase` (img_rebase). Unsafe: only the backing file changes. Safe:
 * in every cluster of the image that is unallocated, each run of sectors
 * where the old chain and the new one read differently is written with the
 * old chain's bytes (the write rule, COW from the old chain), except that at
 * and past the old backing file's end, where the old chain reads zeros, the
 * run is written with write-zeroes (no unmap). Then the backing file changes.
 * Depth outside the chain → invalid-argument.
 */
export function rebase(state: ModelState, op: RebaseOp): StepResult {
  const layers = backingLayers(state);
  if (!Number.isSafeInteger(op.depth) || op.depth < 0 || op.depth > layers.length) {
    return refuse(state, 'invalid-argument', `rebase onto depth ${op.depth}: the chain has ${layers.length} backing files`);
  }
  const target = op.depth === 0 ? undefined : layers[op.depth - 1];
  if (op.unsafe) return { state: withBacking(state, target), outcome: ok };
  // img_rebase asks allocation per byte (bdrv_is_allocated): with subclusters that is not per cluster.
  if (state.options.extendedL2 === true) return refuse(state, 'unsupported', 'safe rebase of an image with subclusters is not modelled');
  const oldSize = state.backing === undefined ? 0 : backingSize(state.backing);
  const g = geometry(state.options);
  const size = state.options.virtualSize;
  let next = state;
  let run: { start: number; end: number; zero: boolean } | undefined;
  const flush = () => {
    if (run === undefined) return;
    const { start, end, zero } = run;
    next = zero
      ? writeZeroes(next, { kind: 'writeZeroes', offset: start, length: end - start, unmap: false }).state
      : writeData(next, start, readBacking(state.backing, start, end));
    run = undefined;
  };
  for (let c = 0; c < clustersFor(size, g.clusterSize); c++) {
    if (entryAt(state.active, g, c) !== undefined) {
      flush();
      continue;
    }
    const clusterStart = c * g.clusterSize;
    const clusterEnd = Math.min(size, clusterStart + g.clusterSize);
    const oldView = readBacking(state.backing, clusterStart, clusterEnd);
    const newView = readBacking(target, clusterStart, clusterEnd);
    for (let sector = clusterStart; sector < clusterEnd; sector += rebaseSectorBytes) {
      const end = Math.min(clusterEnd, sector + rebaseSectorBytes);
      const [from, to] = [sector - clusterStart, end - clusterStart];
      const differs = oldView.subarray(from, to).some((b, i) => b !== newView[from + i]);
      const zero = sector >= oldSize;
      if (!differs || (run !== undefined && run.zero !== zero)) flush();
      if (differs) run = run === undefined ? { start: sector, end, zero } : { ...run, end };
    }
  }
  flush();
  return { state: withBacking(next, target), outcome: ok };
}

/** Mirror's default granularity (bdrv_get_default_bitmap_granularity): the target's cluster size within [4 KiB, 64 KiB]. */
const commitGranuleBytesMin = 4096;
const commitGranuleBytesMax = 65536;

/**
 * `qemu-img commit` (commit_active_start, a mirror job into the backing file,
 * then qcow2_make_empty). The backing file grows to the image's size first
 * (resize rules). Then for each granule (the backing file's cluster size,
 * kept within 4–64 KiB) whose cluster in the image is allocated: a zero
 * cluster covering the whole granule becomes write-zeroes with unmap on the
 * backing file when the granule is whole backing clusters; otherwise the
 * image's guest bytes of the granule are written to the backing file. Then
 * the image is emptied: completely (no L2 tables) for a version 3 image with
 * no snapshots whose L1 table and three clusters fit one refcount block,
 * else by a full discard of every cluster (all unallocated, L2 tables kept).
 *
 * Not modelled, refused as `unsupported` (the generators never draw them): a
 * raw backing file (holes the commit punches change later block status),
 * image clusters smaller than the granule (several image clusters in one
 * granule, which mirror judges by block-status runs), and an image with
 * subclusters (mirror's allocation is per byte).
 */
export function commit(state: ModelState, _op: CommitOp): StepResult {
  const backing = state.backing;
  if (backing === undefined) return refuse(state, 'invalid-argument', 'the image has no backing file to commit to');
  if (backing.format === 'raw') return refuse(state, 'unsupported', 'commit into a raw backing file is not modelled');
  if (state.options.extendedL2 === true) return refuse(state, 'unsupported', 'commit of an image with subclusters is not modelled');
  const g = geometry(state.options);
  const size = state.options.virtualSize;
  let base = backing.image;
  const baseClusterSize = geometry(base.options).clusterSize;
  const granule = Math.min(commitGranuleBytesMax, Math.max(commitGranuleBytesMin, baseClusterSize));
  if (g.clusterSize < granule) return refuse(state, 'unsupported', `commit of ${g.clusterSize}-byte clusters in ${granule}-byte granules is not modelled`);
  if (base.options.virtualSize < size) {
    const grown = resize(base, { kind: 'resize', size });
    if (!grown.outcome.ok) return refuse(state, grown.outcome.error, `commit: the backing file cannot grow: ${grown.outcome.message}`);
    base = grown.state;
  }
  for (let start = 0; start < size; start += granule) {
    const entry = entryAt(state.active, g, Math.floor(start / g.clusterSize));
    if (entry === undefined) continue;
    const end = Math.min(size, start + granule);
    const zero = (entry.kind === 'zero-plain' || entry.kind === 'zero-alloc') && end - start === granule && granule % baseClusterSize === 0;
    base = zero
      ? writeZeroes(base, { kind: 'writeZeroes', offset: start, length: granule, unmap: true }).state
      : writeData(base, start, read(state, start, end - start));
  }
  return { state: withBacking(emptied(state), { format: 'qcow2', image: base }), outcome: ok };
}

/**
 * qcow2_make_empty. The L1 size is taken as what the virtual size needs (the
 * model does not track an L1 that a shrink left longer).
 */
function emptied(state: ModelState): ModelState {
  const g = geometry(state.options);
  const size = state.options.virtualSize;
  const l1Clusters = Math.ceil((Math.ceil(size / g.l1Coverage) * 8) / g.clusterSize);
  const refcountBlockEntries = (g.clusterSize * 8) / state.options.refcountBits;
  if (state.options.version === 3 && state.snapshots.length === 0 && 3 + l1Clusters <= refcountBlockEntries) {
    return { ...state, active: [] };
  }
  const draft = new ActiveDraft(state);
  for (let c = 0; c < clustersFor(size, g.clusterSize); c++) draft.unallocate(c);
  return draft.finish();
}
