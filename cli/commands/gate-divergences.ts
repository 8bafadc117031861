// Known divergences in the gate. Where QEMU 7.2 is wrong and the model is
// right (docs/semantics.md), the corpus holds a property-failure case with
// status `known-qemu-divergence`; where another implementation is
// (docs/libqcow-findings.md), one with status `known-divergence`. `gate --impl qemu` reports a failure that is
// the same fault as such a case, whichever property or later step noticed it
// (corpus/case/fault.ts: the kind of fault and the operation that caused it,
// with its outcome), as that known divergence instead of failing on it forever. The matching lives here, beside
// the CLI, because data flows CLI → properties: the property suite knows nothing
// of the corpus.
import { basename } from 'node:path';
import {
  causingClusterSpan,
  caseFaultIdentity,
  faultedOperation,
  faultFinding,
  faultKind,
  freedThenAllocated,
  leakedClusters,
  operationOutcomes,
  packingMayDecideCause,
  spaceExcessClusters,
  type FaultedOperation,
} from '../../corpus/case/fault.js';
import { runFaultIdentity, runSignature } from '../../corpus/replay/replay-case.js';
import { CorpusStoreError, loadCorpus } from '../../corpus/store.js';
import type { ImageOptions } from '../../model/index.js';
import type { CorpusCase } from '../../corpus/case/types.js';
import { isPropertyName, replayOps, type ImplName, type RunResult } from '../../properties/index.js';
import { escapeXml } from '../../properties/report/format-junit.js';
import { formatText } from '../../properties/report/format-text.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';

export interface KnownDivergence {
  /** What the fault is: `leak/snapshotCreate:refcount-overflow` (corpus/case/fault.ts). */
  readonly identity: string;
  readonly signature: string;
  readonly property: string;
  /** The case's file name, e.g. `qemu-qemuJudges-qemu-img-check-snapshotCreate-9241c9949ceda02d.json`. */
  readonly caseFile: string;
  readonly description: string;
  readonly options: ImageOptions;
  /** For a leak: how many clusters the case's checker verdict counts as leaked. */
  readonly leakedClusters?: number;
  /** For a space fault: how many clusters the case's file had beyond the bound, and how many guest clusters its causing operation spans. */
  readonly space?: { readonly excessClusters: number; readonly causingSpan: number };
  /** For a structure fault: what the check found wrong, without the step, numbers and offsets (structureShape). */
  readonly structureShape?: string;
  /**
   * For a crash or io-error fault: what the check found (faultFinding) and the
   * operation the fault hit, with the kinds of the clusters it covered
   * (faultedOperation); `crash/crash:fault` alone names every crash.
   */
  readonly fault?: {
    readonly finding: string;
    readonly operation: FaultedOperation | undefined;
    /** Lazy refcounts on and a cluster freed then one allocated since the last durable point (freedThenAllocated): the fault is that reuse, whichever op the crash hit. */
    readonly lazyReuse: boolean;
  };
  /** Whose divergence: `QEMU`, or a cmd: implementation's handshake name. */
  readonly owner: string;
}

/** Fault identity → the cases with it, for every known-qemu-divergence property-failure case in `dirs` (sorted by file name). */
export type KnownDivergences = ReadonlyMap<string, readonly KnownDivergence[]>;

export function loadKnownQemuDivergences(dirs: readonly string[]): Promise<KnownDivergences> {
  return loadKnownDivergences(dirs, 'qemu', undefined);
}

/**
 * Whether case `c` is a known divergence of `impl`: a known-qemu-divergence
 * case for QEMU; a known-divergence case of the same implementation (a cmd:
 * one recognised by its handshake name, whatever its command line); or one
 * whose `statuses` say so for `impl`.
 */
function isKnownDivergenceOf(c: CorpusCase, impl: ImplName, adapterName: string | undefined): boolean {
  if (c.statuses?.[impl] === 'known-divergence') return true;
  if (impl === 'qemu' && c.status === 'known-qemu-divergence') return true;
  if (c.status !== 'known-divergence') return false;
  return c.implementation === impl || (adapterName !== undefined && c.adapter?.name === adapterName);
}

/** Fault identity → the known divergences of `impl` in `dirs` (`adapterName`: a cmd: implementation's handshake name). */
export async function loadKnownDivergences(dirs: readonly string[], impl: ImplName, adapterName: string | undefined): Promise<KnownDivergences> {
  const known = new Map<string, KnownDivergence[]>();
  for (const dir of dirs) {
    let cases;
    try {
      cases = await loadCorpus(dir);
    } catch (error) {
      // Without the corpus the gate cannot tell a known divergence from a new failure: no verdict.
      if (error instanceof CorpusStoreError) throw new CliError(`cannot load the known divergences: ${error.message}`, exitCodes.cannotRun);
      throw error;
    }
    for (const { case: c, jsonPath } of cases) {
      if (c.kind !== 'property-failure' || !isKnownDivergenceOf(c, impl, adapterName)) continue;
      const identity = caseFaultIdentity(c);
      const leaked = identity.startsWith('leak/') ? leakedClusters(c.message) : undefined;
      const excess = identity.startsWith('space/') ? spaceExcessClusters(c.message) : undefined;
      const shape = identity.startsWith('structure/') ? structureShape(c.message) : undefined;
      const fault =
        identity.startsWith('crash/') || identity.startsWith('io-error/')
          ? { finding: faultFinding(c.message), operation: faultedOperation(c.options, c.ops), lazyReuse: c.options.lazyRefcounts && freedThenAllocated(c.options, c.ops) }
          : undefined;
      const entry = {
        identity,
        signature: c.signature,
        property: c.property,
        caseFile: basename(jsonPath),
        description: c.description,
        options: c.options,
        ...(leaked === undefined ? {} : { leakedClusters: leaked }),
        ...(excess === undefined ? {} : { space: { excessClusters: excess, causingSpan: causingClusterSpan(c.options, c.ops) } }),
        ...(shape === undefined ? {} : { structureShape: shape }),
        ...(fault === undefined ? {} : { fault }),
        owner: impl === 'qemu' ? 'QEMU' : (adapterName ?? impl),
      };
      known.set(identity, [...(known.get(identity) ?? []), entry]);
    }
  }
  return known;
}

/**
 * The known divergence a failed run is, or undefined (passed, not a property
 * failure, or another fault). The fault identity decides, not the property or
 * the check that saw it; when several cases share it (the same leak with 1-bit
 * and 2-bit refcounts, or seen by several properties), the one of the same
 * property and then with the closest image options is named.
 */
export function matchKnownDivergence(result: RunResult, known: KnownDivergences): KnownDivergence | undefined {
  if (result.status !== 'property-failed') return undefined;
  const options = result.counterexample.options;
  const signature = runSignature(result.property, result);
  const likeness = (d: KnownDivergence): number =>
    (d.property === result.property ? 20 : 0) +
    (d.signature === signature ? 10 : 0) +
    (['version', 'clusterBits', 'refcountBits', 'lazyRefcounts'] as const).filter((field) => d.options[field] === options[field]).length;
  let best: KnownDivergence | undefined;
  const identity = runFaultIdentity(result);
  // a snapshot the model lets succeed may have been refused for an overflow the packing on disk decides
  const packed = /^leak\/snapshot(Create|Revert):ok$/.test(identity) && packingMayDecideCause(options, result.counterexample.steps);
  const candidates = [...(known.get(identity) ?? []), ...(packed ? (known.get(identity.replace(/:ok$/, ':refcount-overflow')) ?? []) : [])];
  for (const d of candidates) {
    if (!sameSpaceFault(result, d) || !sameStructureFault(result, d) || !sameFaultFinding(result, d)) continue;
    if (best === undefined || likeness(d) > likeness(best)) best = d;
  }
  for (const d of best === undefined ? leaksExplainingSpace(result, known) : []) if (best === undefined || likeness(d) > likeness(best)) best = d;
  return best;
}

/**
 * A space fault's identity (`space/write:ok`) names only the operation that
 * grew the file, which fits many causes: a known one is the same fault only
 * when the file is no further past the bound than in the case, and the
 * operation spans several clusters where the case's did (an allocator's habit
 * with multi-cluster runs says nothing of a one-cluster write). Other faults:
 * the identity decides.
 */
function sameSpaceFault(result: Extract<RunResult, { status: 'property-failed' }>, d: KnownDivergence): boolean {
  if (d.space === undefined) return true;
  const excess = spaceExcessClusters(result.failure.message);
  if (excess === undefined || excess > d.space.excessClusters) return false;
  const { options, steps } = result.counterexample;
  return d.space.causingSpan < 2 || causingClusterSpan(options, steps) >= 2;
}

/**
 * What a structure violation found wrong, without the step it followed and
 * with every number and offset as `#`: `refcounts: expected host cluster # of
 * compressed streams refcount #, found refcount #`.
 */
export function structureShape(message: string): string {
  return message.replace(/^\[structure\] (after [^:]*|at the end[^:]*): /, '').replace(/\b(0x[0-9a-f]+|\d+)\b/g, '#');
}

/**
 * A structure fault's identity names only the operation it followed (with the
 * model's outcome, which does not know how compressed streams are packed: a
 * snapshot QEMU refuses for an overflow in a shared stream cluster is `ok`):
 * a known one is the same fault only when the check found the same kind of
 * thing wrong (structureShape).
 */
function sameStructureFault(result: Extract<RunResult, { status: 'property-failed' }>, d: KnownDivergence): boolean {
  return d.structureShape === undefined || structureShape(result.failure.message) === d.structureShape;
}

/**
 * A crash or io-error fault's identity (`crash/crash:fault`) names no cause at
 * all: a known one is the same fault only when the check found the same thing
 * (faultFinding: say the guest disk does not read, with the same error) and
 * the fault hit the same kind of operation over clusters of every kind the
 * case's covered (a discard over compressed clusters, say; over others as
 * well is allowed). A discard and a write-zeroes free compressed clusters
 * alike in QEMU (the stream is freed whether or not the write-zeroes may
 * unmap), so over compressed clusters either stands for the other; a
 * compressed write goes the same way over an unallocated or a plain zero
 * cluster (neither has a host cluster). A case of a freed cluster reused
 * under lazy refcounts (lazyReuse) names no faulted op: the run needs lazy
 * refcounts and a free then an allocation since its last durable point.
 */
function sameFaultFinding(result: Extract<RunResult, { status: 'property-failed' }>, d: KnownDivergence): boolean {
  if (d.fault === undefined) return true;
  if (faultFinding(result.failure.message) !== d.fault.finding) return false;
  const { options, steps } = result.counterexample;
  if (d.fault.lazyReuse) return options.lazyRefcounts && freedThenAllocated(options, steps);
  const hit = faultedOperation(options, steps);
  const want = d.fault.operation;
  if (want === undefined || hit === undefined) return want === hit;
  const freesCompressed = (op: FaultedOperation): boolean => (op.kind === 'discard' || op.kind === 'writeZeroes') && op.over.includes('compressed');
  // a compressed write allocates its stream alike over a cluster with no host cluster: unallocated or a plain zero cluster
  const over = (op: FaultedOperation): readonly string[] => (op.kind === 'writeCompressed' ? op.over.map((k) => (k === 'zero-plain' ? 'unallocated' : k)) : op.over);
  return (hit.kind === want.kind || (freesCompressed(want) && freesCompressed(hit))) && over(want).every((k) => over(hit).includes(k));
}

/**
 * The known leaks that explain a `space` failure: a leaked cluster stays in
 * the file, so the space check notices it only when a later step needs the
 * room (a copy-on-write, a grown table), and its fault identity names that
 * step. A known leak explains the excess when its causing operation, with the
 * same outcome and refcount width, ran earlier in the sequence often enough
 * for the clusters it leaks each time to cover all the excess; one cluster
 * more, or another width, is still a failure.
 */
function leaksExplainingSpace(result: Extract<RunResult, { status: 'property-failed' }>, known: KnownDivergences): KnownDivergence[] {
  if (result.failure.kind !== 'violation' || result.failure.check !== 'space') return [];
  const excess = spaceExcessClusters(result.failure.message);
  if (excess === undefined) return [];
  const { options, steps } = result.counterexample;
  const outcomes = operationOutcomes(options, steps);
  return [...known.values()].flat().filter((d) => {
    if (d.leakedClusters === undefined || d.options.refcountBits !== options.refcountBits) return false;
    const cause = d.identity.slice('leak/'.length);
    return outcomes.filter((o) => o.outcome === cause).length * d.leakedClusters >= excess;
  });
}

export function knownLabel(d: KnownDivergence): string {
  return `known ${d.owner} divergence (case ${d.caseFile})`;
}

/** The text report of a run that hit a known divergence: the usual report under a headline that says it does not fail the gate. */
export function formatKnownDivergence(result: RunResult, d: KnownDivergence): string {
  const lines = formatText(result).split('\n');
  return [`Property ${result.property} (impl ${result.impl}): ${knownLabel(d)} after ${result.runs} runs; not a gate failure`, `Known: ${d.description}`, ...lines.slice(1)].join(
    '\n',
  );
}

/** A JUnit <testcase> for a known divergence: skipped, with the report as its output. */
export function junitKnownTestcase(result: RunResult, d: KnownDivergence): string {
  return [
    `  <testcase classname="qcow2-verify.${escapeXml(result.impl)}" name="${escapeXml(result.property)}" time="${(result.timeMs / 1000).toFixed(3)}">`,
    `    <skipped message="${escapeXml(knownLabel(d))}"/>`,
    `    <system-out>${escapeXml(formatKnownDivergence(result, d))}</system-out>`,
    '  </testcase>',
  ].join('\n');
}

/**
 * A leak that `qemu-img check` or the checker sees only at the end of a
 * sequence is named after the last step that changed the image, which may be
 * any step after the one that leaked when shrinking stopped early. When a
 * known leak's causing operation (same outcome, same refcount width) ran in
 * the sequence, the prefix through its last run is replayed: if it leaks the
 * same number of clusters with that known identity, the steps after it added
 * no leak and the failure is that known divergence. Otherwise, and for every
 * other kind of fault, the failure stands. Costs one replay, and only for a
 * leak no case matches directly.
 */
export async function attributeKnownLeak(result: RunResult, known: KnownDivergences): Promise<KnownDivergence | undefined> {
  if (result.status !== 'property-failed' || result.failure.kind !== 'violation' || !isPropertyName(result.property)) return undefined;
  const observed = { check: result.failure.check, message: result.failure.message };
  const leaked = leakedClusters(observed.message);
  if (faultKind(observed) !== 'leak' || leaked === undefined) return undefined;
  const { options, steps } = result.counterexample;
  const outcomes = operationOutcomes(options, steps);
  const candidates = [...known.values()].flat().filter((d) => d.identity.startsWith('leak/') && d.options.refcountBits === options.refcountBits);
  const last = Math.max(-1, ...outcomes.filter((o) => candidates.some((d) => d.identity === `leak/${o.outcome}`)).map((o) => o.index));
  if (last < 0 || last === steps.length - 1) return undefined;
  const prefix = await replayOps({ impl: result.impl, options, ops: steps.slice(0, last + 1), properties: [result.property] });
  if (prefix.status !== 'property-failed' || leakedClusters(prefix.failure.message) !== leaked) return undefined;
  return matchKnownDivergence(prefix, known);
}