// `qcow2-verify gate`: the conformance gate. Runs the model-based properties
// against an implementation within a budget (about a minute by default, or
// --time, or --runs sequences per property), prints the seed first and a
// coverage summary last, and exits 0 only when every property held; 1 when one
// failed (with its replay command and a QEMU shell script); 2 when the gate
// could not judge (QEMU missing, a harness error) — never green without a
// verdict. The work is cut into batches of sequences (gate-batch.ts), each
// with its own seed, run in worker threads (gate-pool.ts); progress goes to
// stderr (gate-progress.ts). With --impl qemu, a failure that is a known QEMU
// divergence of the corpus (the same fault, caused by the same operation,
// whoever noticed it) is reported as such and does not fail the gate
// (gate-divergences.ts); the property goes on with its next batch.
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  emptyCoverage,
  formatCoverage,
  formatText,
  hashSeed,
  isImplName,
  ImplementationError,
  isPropertyName,
  planImplementation,
  mergeCoverage,
  properties,
  propertyNames,
  type ImplementationPlan,
  type ImplName,
  type PropertyName,
  type RunResult,
} from '../../properties/index.js';
import type { Shard } from '../../corpus/campaign/seed-stream.js';
import { seedOption, shardOption } from '../campaign-options.js';
import { defaultCorpusDir } from '../../corpus/store.js';
import { formatBudgetMs, parseDuration } from '../duration.js';
import { exitCodes } from '../exit-codes.js';
import { usageError } from '../fatal.js';
import { qemuReportLine } from '../qemu-tools.js';
import { epochNow, type Batch } from './gate-batch.js';
import { formatKnownDivergence, knownLabel, loadKnownDivergences, type KnownDivergences } from './gate-divergences.js';
import { knownDivergenceOf } from './known-divergence-of.js';
import { inProcessPool, workerPool, type BatchPool } from './gate-pool.js';
import { recordedPathPool } from './gate-recorded-path.js';
import { GateProgress } from './gate-progress.js';
import { gateVerdict, writeFailurePage, writeGateReports, writeReproScripts, type GateEntry } from './gate-report.js';

// Registered by gate-command.ts (light), which loads this module when gate runs.
export { registerGate } from './gate-command.js';
export type { GateEntry } from './gate-report.js';

/** The default budget: about a minute of wall time, whatever the machine's speed. */
export const defaultGateTime = '60s';

/**
 * Sequences per batch under a time budget. A batch usually ends at its time
 * slice, not here; runs left when the slice ends are skipped, which costs a
 * draw each, so this stays small.
 */
export const batchRunsDefault = 100;

/**
 * Shrinking may run past the time budget by this fraction of it (a failure
 * found in the last second still shrinks a little).
 */
export const shrinkOvertimeFraction = 0.05;

/**
 * A property's first sequence may run past the budget by this fraction of it
 * and is cut off there: a property that could not finish one sequence is "not
 * judged" (exit 2), and the gate stays within 10 % of its budget.
 */
export const firstSequenceOvertimeFraction = 0.05;

/** A worker still in one step this fraction of the budget after the hard deadline is left behind (gate-pool.ts closes it). */
export const abandonGraceFraction = 0.01;

/** Known divergences one property may hit before the gate stops re-running it (each one costs a shrink). */
export const knownDivergencesPerPropertyMax = 5;

/** Budget: wall time for the whole gate, or sequences per property. */
export type GateBudget = { readonly kind: 'time'; readonly ms: number } | { readonly kind: 'runs'; readonly count: number };

export interface GateOptions {
  readonly impl: ImplName;
  readonly budget: GateBudget;
  /** --shrink-time: each failure's shrinking stops this many milliseconds after it was found. */
  readonly shrinkTimeMs?: number;
  /** The seed this gate runs with: --seed, or with --shard the shard's own seed derived from it (shardSeed). */
  readonly seed: number;
  /** --shard (0-based index); { index: 0, count: 1 } without it. */
  readonly shard: Shard;
  /** --seed (or the drawn seed) before the shard's derivation. */
  readonly campaignSeed: number;
  readonly seedGiven: boolean;
  readonly path: string | undefined;
  readonly properties: readonly PropertyName[];
  readonly json: string | undefined;
  readonly junit: string | undefined;
  readonly verbose: boolean;
  /** Corpora whose known-qemu-divergence cases a failure against QEMU may match. */
  readonly corpusDirs: readonly string[];
  /** Batches run at once, each in its own worker thread; 1 runs them in this thread. */
  readonly workers: number;
  /** Where each failure's QEMU shell script is saved (one directory per failure). */
  readonly reproDir: string;
  /** Where each failure's HTML page is written, when asked for. */
  readonly html?: string;
  /** A cmd: implementation's request timeout in milliseconds (`--request-timeout`); default the protocol's. */
  readonly requestTimeoutMs?: number;
}

export interface RawGateOptions {
  impl?: string;
  runs?: string;
  time?: string;
  seed?: string;
  path?: string;
  property?: string;
  json?: string;
  junit?: string;
  verbose?: boolean;
  corpus?: string;
  workers?: string;
  reproDir?: string;
  html?: string;
  shard?: string;
  requestTimeout?: string;
  shrinkTime?: string;
}

function positiveInteger(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) usageError(`${flag} must be a positive integer, got ${text}`);
  return n;
}

/**
 * The seed of shard `shard` of a gate run with `seed`: (seed·N + I) mod 2^31,
 * so the N shards of one seed get N distinct non-negative seeds (each shard's
 * later batches derive from its own seed by hash, as without shards). The
 * replay line of a failure names the shard's seed; no --shard is needed to
 * replay it.
 */
export function shardSeed(seed: number, shard: Shard): number {
  if (shard.count === 1) return seed;
  const modulus = 2 ** 31;
  return (((seed * shard.count + shard.index) % modulus) + modulus) % modulus;
}

/** Pure: validates commander's raw options. `drawSeed` picks a seed when none was given; `env` may give the shard index (JOB_COMPLETION_INDEX). */
export function parseGateOptions(raw: RawGateOptions, drawSeed: () => number, env: Readonly<Record<string, string | undefined>> = process.env): GateOptions {
  const impl = raw.impl ?? 'ts';
  if (!isImplName(impl)) usageError(`--impl must be ts, qemu, canary or cmd:<command line>, got ${impl}`);
  if (raw.time !== undefined && raw.runs !== undefined) usageError('give --time or --runs, not both');
  const budget: GateBudget =
    raw.runs !== undefined ? { kind: 'runs', count: positiveInteger(raw.runs, '--runs') } : { kind: 'time', ms: parseDuration(raw.time ?? defaultGateTime) };
  const workers = raw.workers === undefined ? availableParallelism() : positiveInteger(raw.workers, '--workers');
  const seed = seedOption(raw.seed, drawSeed);
  const shard = shardOption(raw.shard, env);
  if (raw.path !== undefined && shard.count > 1) usageError('--path replays one failure with the seed printed on its replay line; leave --shard out');
  let selected: PropertyName[] = [...propertyNames];
  if (raw.property !== undefined) {
    if (!isPropertyName(raw.property)) usageError(`--property must be one of ${propertyNames.join(', ')}, got ${raw.property}`);
    selected = [raw.property];
  }
  if (raw.path !== undefined && (raw.seed === undefined || raw.property === undefined)) {
    usageError('--path replays one failure: give it with the --seed and --property it was printed with');
  }
  return {
    impl,
    budget,
    ...(raw.shrinkTime === undefined ? {} : { shrinkTimeMs: parseDuration(raw.shrinkTime, '--shrink-time') }),
    seed: shardSeed(seed, shard),
    shard,
    campaignSeed: seed,
    seedGiven: raw.seed !== undefined,
    path: raw.path,
    properties: selected,
    json: raw.json,
    junit: raw.junit,
    verbose: raw.verbose ?? false,
    // the bundled corpus always counts; --corpus adds the user's own
    corpusDirs: [...new Set([defaultCorpusDir(), ...(raw.corpus === undefined ? [] : [resolve(raw.corpus)])])],
    workers,
    reproDir: resolve(raw.reproDir ?? join(tmpdir(), `qcow2-verify-repro-${shardSeed(seed, shard)}`)),
    ...(raw.html === undefined ? {} : { html: resolve(raw.html) }),
    ...(raw.requestTimeout === undefined ? {} : { requestTimeoutMs: parseDuration(raw.requestTimeout, '--request-timeout') }),
  };
}

/** The exit code a set of results earns: a failure wins over "could not judge". */
export function gateExitCode(results: readonly RunResult[]): number {
  if (results.some((r) => r.status === 'property-failed')) return exitCodes.propertyFailed;
  if (results.some((r) => r.status === 'oracle-unavailable' || r.status === 'harness-error')) return exitCodes.cannotRun;
  return exitCodes.ok;
}

/**
 * The seed of a property's batch `index`: the gate's seed for the first, so
 * that `--seed S --property P` names the same run with --runs; after that (a
 * further batch under a time budget, or the rest of the runs after a known
 * divergence) one derived from the gate's seed, non-negative (a `--seed -5`
 * would read as an option).
 */
export function continuationSeed(seed: number, property: string, attempt: number): number {
  return hashSeed(`${seed}/${property}/${attempt}`) >>> 1;
}

export function batchSeed(seed: number, property: string, index: number): number {
  return index === 0 ? seed : continuationSeed(seed, property, index);
}

/** What the gate has heard from a running batch: whether it still listens, and the sequences the batch finished so far. */
export interface BatchEvents {
  live: boolean;
  sequences: number;
  operations: number;
}

/**
 * The result of a batch left behind at `at` (epoch ms): the sequences it
 * finished before (all passed: a failure ends a batch) count, its coverage
 * beyond their number is lost; `events.live` is cleared so its late progress
 * is ignored.
 */
export function abandonLate(ran: Promise<RunResult>, at: number, property: PropertyName, impl: ImplName, seed: number, events: BatchEvents, onAbandon: () => void): Promise<RunResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<RunResult>((resolve) => {
    timer = setTimeout(() => {
      events.live = false;
      onAbandon();
      const coverage = { ...emptyCoverage(), sequences: events.sequences, operations: events.operations };
      resolve({ status: 'passed', property, impl, seed, runs: events.sequences, coverage, timeMs: 0, stoppedEarly: 'time' });
    }, Math.max(0, at - epochNow()));
  });
  return Promise.race([ran, late]).finally(() => clearTimeout(timer));
}

/**
 * The order properties get their first batch in: those whose every step goes
 * through QEMU processes (their own driver, or --impl qemu for all) first, then
 * by cost, so the slowest first sequences have the most time before the
 * budget ends. Later batches go to the property with the fewest.
 */
function firstRoundOrder<T extends { readonly name: PropertyName }>(runs: readonly T[]): T[] {
  const weight = (name: PropertyName) => (properties[name].driver === undefined ? 0 : 100) + properties[name].cost;
  return [...runs].sort((a, b) => weight(b.name) - weight(a.name));
}

/** One property's progress through its batches. */
interface PropertyRun {
  readonly name: PropertyName;
  batches: number;
  inFlight: number;
  knownHits: number;
  /** With a runs budget: sequences still to run. */
  remainingRuns: number;
  done: boolean;
  readonly passed: RunResult[];
  readonly entries: GateEntry[];
  readonly notes: string[];
}

/**
 * The passed batches of one property as one result: runs and coverage summed.
 * A property none of whose sequences finished within the budget was not
 * judged: that is no pass (exit 2, never green without a verdict).
 */
export function mergePassed(o: GateOptions, name: PropertyName, passed: readonly RunResult[]): RunResult {
  const coverage = passed.reduce((acc, r) => mergeCoverage(acc, r.coverage), emptyCoverage());
  const stopped = passed.some((r) => r.stoppedEarly === 'time');
  const common = {
    property: name,
    impl: o.impl,
    seed: o.seed,
    runs: passed.reduce((n, r) => n + r.runs, 0),
    coverage,
    timeMs: passed.reduce((n, r) => n + r.timeMs, 0),
    ...(stopped ? { stoppedEarly: 'time' as const } : {}),
  };
  if (common.runs === 0) {
    const message = `not judged: no sequence finished within the time budget (${describeBudget(o)}); give a longer --time`;
    return { ...common, status: 'harness-error', message, cause: undefined };
  }
  return { ...common, status: 'passed' };
}

function describeBudget(o: GateOptions): string {
  if (o.path !== undefined) return `replaying path ${o.path}`;
  return o.budget.kind === 'time' ? `budget ${formatBudgetMs(o.budget.ms)}` : `budget ${o.budget.count} runs each`;
}

/** Runs every selected property's batches on `pool` until the budget is spent; returns the entries in property order. */
/**
 * The known divergences a property's failures may match: the implementation's
 * own, and for a reader of QEMU's images also QEMU's (the reader then reads
 * faithfully what QEMU wrote wrong, e.g. the stale bytes after a shrink and
 * grow of docs/qemu-findings.md).
 */
export interface GateKnown {
  readonly own: KnownDivergences;
  readonly qemu: KnownDivergences;
}

export function knownFor(name: PropertyName, known: GateKnown): KnownDivergences {
  if (properties[name].readerOf !== 'qemu' || known.qemu.size === 0) return known.own;
  const merged = new Map(known.own);
  for (const [identity, list] of known.qemu) merged.set(identity, [...(merged.get(identity) ?? []), ...list]);
  return merged;
}

async function runBatches(o: GateOptions, pool: BatchPool, known: GateKnown, progress: GateProgress, out: (line: string) => void): Promise<GateEntry[]> {
  const started = epochNow();
  const timed = o.budget.kind === 'time' && o.path === undefined;
  const deadline = o.budget.kind === 'time' ? started + o.budget.ms : undefined;
  // A property's first batch is one sequence (a verdict for each early); its
  // second gets a fair share of what is left: the remaining time on the free
  // workers, split among the properties that have not had their second yet,
  // so that every property gets its turn before the budget ends even when one
  // worker is held by a slow property. After that, batches run to the deadline.
  const sliceEnd = (free: number): number => {
    const now = epochNow();
    const unstarted = runs.filter((r) => r.batches < 2).length;
    const end = deadline as number;
    return unstarted === 0 ? end : Math.min(end, now + ((end - now) * free) / unstarted);
  };
  const shrinkDeadline = o.budget.kind === 'time' ? started + o.budget.ms * (1 + shrinkOvertimeFraction) : undefined;
  const hardDeadline = o.budget.kind === 'time' ? started + o.budget.ms * (1 + firstSequenceOvertimeFraction) : undefined;
  const runs: PropertyRun[] = o.properties.map((name) => ({
    name,
    batches: 0,
    inFlight: 0,
    knownHits: 0,
    remainingRuns: o.path !== undefined ? 1 : o.budget.kind === 'runs' ? o.budget.count : 0,
    done: false,
    passed: [],
    entries: [],
    notes: [],
  }));
  const eligible = (r: PropertyRun): boolean => {
    if (r.done) return false;
    // the first batch of every property runs, so each gets a verdict however small the budget
    if (timed) return epochNow() < (r.batches === 0 ? (hardDeadline as number) : (deadline as number));
    return r.inFlight === 0 && r.remainingRuns > 0;
  };
  const nextBatch = (free: number): { run: PropertyRun; batch: Batch } | undefined => {
    let pick: PropertyRun | undefined;
    for (const r of firstRoundOrder(runs)) if (eligible(r) && (pick === undefined || r.batches < pick.batches)) pick = r;
    if (pick === undefined) return undefined;
    const batch: Batch = {
      property: pick.name,
      impl: o.impl,
      seed: batchSeed(o.seed, pick.name, pick.batches),
      // a first batch of one sequence: every property starts early, before a failing one's shrink holds a worker to the deadline (see sliceEnd)
      numRuns: timed ? (pick.batches === 0 ? 1 : batchRunsDefault) : pick.remainingRuns,
      ...(o.path === undefined ? {} : { path: o.path }),
      ...(deadline === undefined ? {} : { deadline: sliceEnd(free) }),
      ...(hardDeadline === undefined ? {} : { hardDeadline }),
      ...(shrinkDeadline === undefined ? {} : { shrinkDeadline }),
      ...(o.shrinkTimeMs === undefined ? {} : { shrinkTimeMs: o.shrinkTimeMs }),
      verbose: o.verbose,
      ...(o.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: o.requestTimeoutMs }),
    };
    pick.batches++;
    pick.inFlight++;
    return { run: pick, batch };
  };
  const settle = async (r: PropertyRun, result: RunResult) => {
    const knownHere = knownFor(r.name, known);
    const divergence = await knownDivergenceOf(result, knownHere, o.impl);
    r.inFlight--;
    r.remainingRuns -= result.runs;
    if (divergence !== undefined) {
      r.entries.push({ result, known: divergence });
      r.knownHits++;
      if (r.knownHits >= knownDivergencesPerPropertyMax && !r.done) {
        r.notes.push(`${r.name}: ${r.knownHits} known divergences; its remaining budget is skipped`);
        r.done = true;
      }
      if (o.path !== undefined) r.done = true;
      return;
    }
    if (result.status === 'passed') {
      r.passed.push(result);
      if (!timed) r.done = true;
      return;
    }
    r.entries.push({ result });
    r.done = true;
  };
  // A step cannot be cut in half (a qemu-io read of a whole disk may take
  // minutes on a loaded machine); a worker still busy a little after the hard
  // deadline is left behind, its batch counts no sequence, and closing the
  // pool ends it. A batch in this thread cannot be left behind that way.
  const abandonAt = timed && pool.abandonable && hardDeadline !== undefined ? hardDeadline + (o.budget as { ms: number }).ms * abandonGraceFraction : undefined;
  const running = new Set<Promise<void>>();
  let lostWorkers = 0;
  for (;;) {
    while (running.size + lostWorkers < pool.size) {
      const next = nextBatch(pool.size - lostWorkers - running.size);
      if (next === undefined) break;
      progress.batchStarted();
      const events: BatchEvents = { live: true, sequences: 0, operations: 0 };
      const ran = pool.run(next.batch, (e) => {
        if (!events.live) return;
        if (e.kind === 'progress' && e.progress.kind === 'sequence') {
          events.sequences++;
          events.operations += e.progress.operations;
        }
        if (e.kind === 'sequence') out(e.line);
        progress.onEvent(e);
      });
      const task: Promise<void> = (
        abandonAt === undefined
          ? ran
          : abandonLate(ran, abandonAt, next.run.name, o.impl, next.batch.seed, events, () => {
              lostWorkers++;
            })
      )
        .catch((error: unknown): RunResult => {
          const message = error instanceof Error ? error.message : String(error);
          return { status: 'harness-error', property: next.run.name, impl: o.impl, seed: next.batch.seed, runs: 0, coverage: emptyCoverage(), timeMs: 0, message, cause: error };
        })
        .then(async (result) => {
          progress.batchEnded();
          await settle(next.run, result);
        })
        .finally(() => running.delete(task));
      running.add(task);
    }
    if (running.size === 0) break;
    await Promise.race(running);
  }
  return runs.flatMap((r) => {
    for (const note of r.notes) out(note);
    const failed = r.entries.some((e) => e.known === undefined);
    // known divergences alone need no pass entry; a property with nothing at all was not judged
    const passEntry = failed || (r.passed.length === 0 && r.entries.length > 0) ? [] : [{ result: mergePassed(o, r.name, r.passed) }];
    return [...r.entries, ...passEntry];
  });
}

export interface GateIo {
  /** One line of the report (stdout). */
  readonly out: (line: string) => void;
  /** Progress text (stderr), and whether it is a terminal (a live line) or not (a line every 10 s). */
  readonly progress?: { readonly write: (text: string) => void; readonly tty: boolean };
}

/** The properties that apply to the implementation, and one phrase for each that does not and for everything else left out. */
export function applicableProperties(o: GateOptions, plan: ImplementationPlan): { readonly selected: PropertyName[]; readonly leftOut: string[] } {
  const selected: PropertyName[] = [];
  const skipped: string[] = [];
  for (const name of o.properties) {
    const reason = plan.notApplicable(properties[name]);
    if (reason === undefined) selected.push(name);
    else skipped.push(`${name} (${reason})`);
  }
  return { selected, leftOut: [...(skipped.length === 0 ? [] : [`properties ${skipped.join(', ')}`]), ...plan.leftOut()] };
}

export async function runGate(given: GateOptions, ioOrOut: GateIo | ((line: string) => void)): Promise<number> {
  const io: GateIo = typeof ioOrOut === 'function' ? { out: ioOrOut } : ioOrOut;
  const out = io.out;
  const started = epochNow();
  const inProcess = given.workers <= 1 || given.path !== undefined;
  const shardText = given.shard.count === 1 ? '' : ` (shard ${given.shard.index + 1}/${given.shard.count} of seed ${given.campaignSeed})`;
  out(`qcow2-verify gate: seed ${given.seed}${shardText}${given.seedGiven ? '' : ' (drawn; pass --seed to repeat)'}, impl ${given.impl}`);
  let plan: ImplementationPlan;
  try {
    plan = await planImplementation(given.impl, given.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: given.requestTimeoutMs });
  } catch (error) {
    if (!(error instanceof ImplementationError)) throw error;
    out(`the implementation failed its handshake: ${error.rawMessage}`);
    out('summary: not judged: the implementation failed');
    return exitCodes.propertyFailed;
  }
  const caps = plan.capabilities;
  if (caps !== undefined) out(`implementation: ${caps.name} ${caps.version}, ${caps.mode}`);
  const { selected, leftOut } = applicableProperties(given, plan);
  if (selected.length === 0) {
    out(`left out: ${leftOut.join('; ')}`);
    out(`summary: not judged: no selected property applies to ${given.impl}`);
    return exitCodes.cannotRun;
  }
  const o: GateOptions = { ...given, properties: selected };
  out(`properties: ${o.properties.join(', ')}; ${describeBudget(o)}; ${inProcess ? 'in this process' : `${o.workers} workers`}`);
  out(await qemuReportLine());
  const readsQemuImages = o.impl !== 'qemu' && o.properties.some((name) => properties[name].readerOf === 'qemu');
  const known: GateKnown = {
    own: await loadKnownDivergences(o.corpusDirs, o.impl, caps?.name),
    qemu: readsQemuImages ? await loadKnownDivergences(o.corpusDirs, 'qemu', undefined) : new Map(),
  };
  const progress = new GateProgress(io.progress?.write ?? (() => undefined), io.progress?.tty ?? false, epochNow, describeBudget(o).replace(/^budget /, ''));
  if (io.progress !== undefined) progress.start();
  const threads = inProcess ? inProcessPool() : workerPool(o.workers);
  const pool = o.path === undefined ? threads : recordedPathPool(threads, o.corpusDirs, out);
  let entries: GateEntry[];
  try {
    entries = await runBatches(o, pool, known, progress, out);
  } finally {
    progress.stop();
    await pool.close();
  }
  const held = o.properties.filter((p) => entries.every((e) => e.result.property !== p || e.known !== undefined || e.result.status === 'passed'));
  const withKnown = new Set(entries.flatMap((e) => (e.known === undefined ? [] : [e.result.property])));
  for (const e of entries) {
    if (e.known !== undefined) out(formatKnownDivergence(e.result, e.known));
    else if (e.result.status === 'passed' && withKnown.has(e.result.property)) out(`${formatText(e.result)}, apart from the known divergence above`);
    else out(formatText(e.result));
  }
  const knownHits = entries.flatMap((e) => (e.known === undefined ? [] : [e.known]));
  const coverage = entries.reduce((acc, e) => mergeCoverage(acc, e.result.coverage), emptyCoverage());
  const kinds = Object.keys(coverage.clusterKinds).sort();
  const knownText =
    knownHits.length === 0
      ? ''
      : ` (${knownHits.length} known ${[...new Set(knownHits.map((k) => k.owner))].join(' and ')} divergence${knownHits.length === 1 ? '' : 's'}: ${[...new Set(knownHits.map((k) => k.caseFile))].join(', ')})`;
  const elapsedMs = epochNow() - started;
  out(
    `summary: ${held.length}/${o.properties.length} properties held${knownText}; ` +
      `${coverage.sequences} sequences, ${coverage.operations} operations; cluster kinds covered: ${kinds.join(', ') || 'none'}; ` +
      `${(elapsedMs / 1000).toFixed(1)} s`,
  );
  if (leftOut.length > 0) out(`left out: ${leftOut.join('; ')}`);
  if (o.verbose) out(formatCoverage(coverage));
  const scripts = await writeReproScripts(o.reproDir, entries);
  for (const e of entries) {
    if (e.result.status !== 'property-failed') continue;
    const script = scripts.get(e);
    out(e.known === undefined ? `Replay: ${e.result.replay}` : `Replay (${knownLabel(e.known)}): ${e.result.replay}`);
    if (script !== undefined) out(`  on QEMU: sh ${script}`);
    if (o.html !== undefined) out(`  html: ${await writeFailurePage(o.html, e.result)}`);
  }
  const code = gateExitCode(entries.filter((e) => e.known === undefined).map((e) => e.result));
  const implementation = caps === undefined ? undefined : { name: caps.name, version: caps.version, mode: caps.mode };
  await writeGateReports(o, entries, scripts, { ...(implementation === undefined ? {} : { implementation }), leftOut, code, verdict: gateVerdict(code), elapsedMs, coverage });
  return code;
}
