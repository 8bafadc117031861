// `replay --trace`: step through a property-failure case printing each step in
// qemu-io syntax, the outcome, and for every guest cluster the step touched
// what the model and the implementation hold afterwards (cluster kind and a
// short hash of the guest content), marking the first divergence. The verdict
// itself still comes from replayOps (replay-case.ts); the trace explains it.
import { createHash } from 'node:crypto';
import { bufferReader, decodeImage, geometry, guestClusterKind, initialState, read, step as modelStep, subclusterState, type ModelState, type Outcome } from '../../model/index.js';
import { driverFactoryFor, formatStep, isFaultStep, isPropertyName, type ImageDriver, type Step } from '../../properties/index.js';
import type { Implementation, PropertyFailureCase } from '../case/types.js';

/** Clusters shown per step; the rest are counted. */
const tracedClustersMax = 6;

export function shortHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 8);
}

function outcomeText(o: Outcome): string {
  return o.ok ? 'ok' : `${o.error}`;
}

/** Guest clusters a step touches, within the disk as the model has it before and after. */
function touchedClusters(step: Step, before: ModelState, after: ModelState, clusterSize: number): number[] {
  const span = (offset: number, length: number, size: number) => {
    const end = Math.min(offset + length, size);
    if (end <= offset) return [];
    const first = Math.floor(offset / clusterSize);
    return Array.from({ length: Math.ceil(end / clusterSize) - first }, (_, i) => first + i);
  };
  switch (step.kind) {
    case 'write':
    case 'writeCompressed':
    case 'writeZeroes':
    case 'discard':
    case 'read':
      return span(step.offset, step.length, after.options.virtualSize);
    case 'resize':
    case 'snapshotRevert': {
      // The cluster holding the old end and the one holding the new end show stale-tail and shrink bugs.
      const ends = [before.options.virtualSize, after.options.virtualSize].map((s) => Math.floor(Math.max(0, s - 1) / clusterSize));
      return [...new Set(ends)].filter((c) => c * clusterSize < after.options.virtualSize);
    }
    case 'snapshotCreate':
    case 'snapshotDelete':
    case 'flush':
    case 'reopen':
    case 'crash':
    case 'ioError':
    case 'createOverlay':
    case 'rebase':
    case 'commit':
      return [];
    default: {
      const never: never = step;
      throw new Error(`unknown step ${JSON.stringify(never)}`);
    }
  }
}

/** An extended L2 entry's subcluster bitmaps as the trace prints them (compressed entries have none). */
function bitmapText(kind: string, alloc: number, zero: number): string {
  return kind === 'compressed' ? '' : ` [alloc 0x${alloc.toString(16)} zero 0x${zero.toString(16)}]`;
}

/** The model's kind for a guest cluster, with its subcluster bitmaps on an extended-L2 image. */
function modelKind(state: ModelState, cluster: number): string {
  const kind = guestClusterKind(state, cluster);
  if (state.options.extendedL2 !== true) return kind;
  const g = geometry(state.options);
  const entry = state.active[Math.floor(cluster / g.l2EntriesCount)]?.entries.get(cluster % g.l2EntriesCount);
  let alloc = 0;
  let zero = 0;
  for (let i = 0; i < 32; i++) {
    const s = subclusterState(entry, i);
    if (s === 'allocated') alloc |= 1 << i;
    if (s === 'zero') zero |= 1 << i;
  }
  return `${kind}${bitmapText(kind, alloc >>> 0, zero >>> 0)}`;
}

/** The implementation's kind for a guest cluster, from its flushed on-disk image (with subcluster bitmaps on an extended-L2 image). */
async function implKinds(driver: ImageDriver, clusters: readonly number[], clusterSize: number): Promise<(c: number) => string> {
  if (clusters.length === 0) return () => '-';
  try {
    const decoded = decodeImage(bufferReader(await driver.imageBytes()));
    const entries = clusterSize / (decoded.header.extendedL2 ? 16 : 8); // an extended L2 entry is 16 bytes
    return (c) => {
      const l2 = decoded.active.l2Offsets[Math.floor(c / entries)] ?? 0;
      if (l2 === 0) return 'unallocated';
      const entry = decoded.l2Tables.get(l2)?.[c % entries];
      if (!decoded.header.extendedL2) return entry?.kind ?? 'unallocated';
      // as model/equivalent.ts reads it: an unallocated entry with zero bits is the model's zero-plain
      const kind = entry?.kind === 'unallocated' && (entry.subclusters?.zero ?? 0) !== 0 ? 'zero-plain' : (entry?.kind ?? 'unallocated');
      return `${kind}${bitmapText(kind, entry?.subclusters?.alloc ?? 0, entry?.subclusters?.zero ?? 0)}`;
    };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return () => `undecodable (${why})`;
  }
}

export async function traceCase(c: PropertyFailureCase, impl: Implementation, out: (line: string) => void): Promise<void> {
  const clusterSize = 2 ** c.options.clusterBits;
  let state = initialState(c.options);
  const driver = await (await driverFactoryFor(impl, isPropertyName(c.property) ? c.property : 'readsAndOutcomes'))(c.options);
  let diverged = false;
  const divergence = (text: string) => {
    if (!diverged) out(`    ^ first divergence: ${text}`);
    diverged = true;
  };
  try {
    out(`trace of ${c.kind} case against ${impl} (${c.ops.length} steps); model vs ${driver.name}`);
    for (const [i, step] of c.ops.entries()) {
      out(`#${i + 1} ${formatStep(step)}`);
      const before = state;
      if (isFaultStep(step)) {
        out('    a fault: the trace replays without faults (qcow2-verify replay injects them)');
        continue;
      }
      if (step.kind !== 'read') {
        const { state: next, outcome } = modelStep(state, step);
        let actual: Outcome;
        try {
          actual = await driver.apply(step);
        } catch (error) {
          out(`    model ${outcomeText(outcome)} | impl threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
          divergence('the implementation threw');
          return;
        }
        state = next;
        out(`    outcome: model ${outcomeText(outcome)} | impl ${outcomeText(actual)}`);
        if (outcome.ok !== actual.ok || (!outcome.ok && !actual.ok && outcome.error !== actual.error)) divergence('outcomes differ');
      }
      const clusters = touchedClusters(step, before, state, clusterSize);
      const kindOf = await implKinds(driver, clusters, clusterSize);
      for (const cluster of clusters.slice(0, tracedClustersMax)) {
        const offset = cluster * clusterSize;
        const length = Math.min(clusterSize, state.options.virtualSize - offset);
        const modelBytes = read(state, offset, length);
        const modelKindText = modelKind(state, cluster);
        let implBytes: Uint8Array;
        try {
          implBytes = await driver.read(offset, length);
        } catch (error) {
          // QEMU that marked the image corrupt has closed it ("No medium found"): nothing after this can be read
          out(`    cluster ${cluster} @0x${offset.toString(16)}: model ${modelKindText} #${shortHash(modelBytes)} | impl read failed: ${error instanceof Error ? error.message : String(error)}`);
          divergence(`the implementation cannot read guest cluster ${cluster}`);
          return;
        }
        const implKind = kindOf(cluster);
        const same = shortHash(modelBytes) === shortHash(implBytes) && modelKindText === implKind;
        out(`    cluster ${cluster} @0x${offset.toString(16)}: model ${modelKindText} #${shortHash(modelBytes)} | impl ${implKind} #${shortHash(implBytes)}${same ? '' : '  <>'}`);
        if (!same) divergence(`guest cluster ${cluster} differs`);
      }
      if (clusters.length > tracedClustersMax) out(`    … ${clusters.length - tracedClustersMax} more clusters`);
      if (step.kind === 'snapshotCreate' || step.kind === 'snapshotDelete' || step.kind === 'snapshotRevert') {
        out(`    model snapshots: ${state.snapshots.map((s) => `${s.id}:${s.name}`).join(', ') || '(none)'}`);
      }
    }
    if (!diverged) out('no divergence in outcomes, nor in kinds or contents of the touched clusters');
  } finally {
    await driver.close();
  }
}
