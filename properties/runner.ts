// Runs a property: fast-check draws sequences (fc.commands inside
// fc.asyncProperty), fc.asyncModelRun executes them against the model and the
// driver, and a failure shrinks to a short sequence that replays exactly from
// its seed and path. replayOps runs one explicit sequence without fast-check.
// A run may have a deadline: a sequence still running when it passes is cut
// off between two steps and does not count, no sequence starts after it (the
// first sequence of a run may go on to a later hard deadline, so that a run
// judges at least one when it can), and shrinking stops at its own deadline with the smallest failure found
// so far, saying so in the result. The clock only bounds the work; what a
// sequence does and whether it fails never depends on it.
import fc from 'fast-check';
import { extendedL2ClusterBitsMin, initialState, type ImageOptions } from '../model/index.js';
import { QemuMissingError, qemuVersion } from '../oracle/index.js';
import type { ImageOptionsConstraints } from './arbitraries/image-options.js';
import { sequence, type Sequence, type SequenceConstraints } from './arbitraries/sequence.js';
import type { SwarmWeights } from './arbitraries/swarm.js';
import type { Check } from './checks/check.js';
import type { ModelBox } from './commands/command.js';
import { RunContext } from './context.js';
import { emptyCoverage, mergeCoverage, recordSequenceStart, type Coverage } from './coverage.js';
import { ImplementationError, implementationError, type DriverFactory, type ImageDriver, type ImplName } from './driver.js';
import { isAdapterHang } from './drivers/command.js';
import { planImplementation, type ImplementationPlan } from './implementation.js';
import { checksOf, extendedL2Percent, properties, type PropertyDefinition, type PropertyName } from './registry.js';
import { replayCommand, type Counterexample, type Failure, type RunResult } from './report/run-result.js';
import type { Step } from './steps.js';
import { hashSeed } from './seed.js';
import { PropertyViolation } from './violation.js';

export interface RunConstraints {
  readonly property: PropertyName;
  /** Default 'ts'. */
  readonly impl?: ImplName;
  /** Default: fast-check's global seed (test/setup.ts); one of the two is required. */
  readonly seed?: number;
  /** fast-check replay path of a failure (with its seed). */
  readonly path?: string;
  /** Sequences to run. Default: fast-check's global numRuns. */
  readonly numRuns?: number;
  readonly sequence?: SequenceConstraints;
  /** Clock in milliseconds for the report's timing and the deadlines; never decides a verdict. Default: no timing (0). */
  readonly now?: () => number;
  /** On the `now` clock: no further sequence starts at or after it, and one running is cut off (the first one of the run excepted). Default: none. */
  readonly deadline?: number;
  /** On the `now` clock: the first sequence of the run is cut off here (then the run judged nothing: `runs` 0). Default: none. */
  readonly hardDeadline?: number;
  /** On the `now` clock: shrinking stops at it and reports the smallest failure found so far. Default: none (a fixpoint). */
  readonly shrinkDeadline?: number;
  /** On the `now` clock: shrinking stops this many milliseconds after the first failure (whichever of this and `shrinkDeadline` comes first). Default: none. */
  readonly shrinkTimeMs?: number;
  /** Called with each freshly drawn sequence (not with shrink attempts), e.g. to print its options. */
  readonly onSequence?: (options: ImageOptions, swarm: SwarmWeights) => void;
  /** Progress: each operation, each finished sequence, the first failure and each shrink attempt (for progress lines). */
  readonly onProgress?: (event: RunProgress) => void;
  /**
   * Sequences shrinking may run before it stops and reports the smallest failure
   * found so far. Default: none, shrinking goes on to a fixpoint (or to `shrinkDeadline`).
   * A replay (`path` given) does not shrink past the path: it reproduces exactly.
   */
  readonly shrinkAttemptsMax?: number;
  /** The implementation's plan when the caller has it already (a cmd: one then shakes hands once). Default: made from `impl`. */
  readonly plan?: ImplementationPlan;
  /** A cmd: implementation's request timeout in milliseconds (docs/protocol.md). Default requestTimeoutMsDefault. */
  readonly requestTimeoutMs?: number;
}

/** What a run reports while it works; `shrinking` tells a shrink attempt's steps from a fresh sequence's. */
export type RunProgress =
  | { readonly kind: 'step'; readonly shrinking: boolean }
  | { readonly kind: 'sequence'; readonly operations: number }
  | { readonly kind: 'failure' }
  | { readonly kind: 'shrink-attempt'; readonly failed: boolean };

/** Thrown between two steps when the run's time is up: the sequence is cut off, which is no verdict. */
class BudgetSpent extends Error {
  override readonly name = 'BudgetSpent';
}

/** A RunContext that reports each step it runs and cuts the sequence off when `timeUp()` says so. */
class ReportingContext extends RunContext {
  constructor(
    driver: ImageDriver,
    options: ImageOptions,
    checks: readonly Check[],
    coverage: Coverage,
    private readonly hooks: SequenceHooks,
  ) {
    super(driver, options, checks, coverage);
  }

  override async runStep(m: ModelBox, step: Step): Promise<void> {
    if (this.hooks.timeUp()) throw new BudgetSpent('the time budget is spent');
    this.hooks.onStep();
    return super.runStep(m, step);
  }
}

interface SequenceHooks {
  readonly onStep: () => void;
  readonly timeUp: () => boolean;
}

const noHooks: SequenceHooks = { onStep: () => undefined, timeUp: () => false };

interface Attempt {
  readonly counterexample: Counterexample;
  readonly error: unknown;
}

/** Runs `steps` of one sequence against a fresh driver; a failure comes back as the attempt (the steps run and the error), never thrown. */
export async function runSequence(
  factory: DriverFactory,
  options: ImageOptions,
  checks: readonly Check[],
  coverage: Coverage,
  swarm: SwarmWeights | undefined,
  execute: (model: ModelBox, ctx: RunContext) => Promise<void>,
  hooks: SequenceHooks = noHooks,
): Promise<Attempt | undefined> {
  const model: ModelBox = { state: initialState(options) };
  let ctx: RunContext | undefined;
  let driver: ImageDriver | undefined;
  try {
    driver = await factory(options);
    ctx = new ReportingContext(driver, options, checks, coverage, hooks);
    await ctx.start();
    await execute(model, ctx);
    if (hooks.timeUp()) throw new BudgetSpent('the time budget is spent');
    await ctx.finish(model);
    const closing = driver;
    driver = undefined;
    await closing.close().catch((error: unknown) => {
      throw implementationError(closing.name, 'close', error);
    });
    return undefined;
  } catch (error) {
    await driver?.close().catch(() => undefined);
    const steps: readonly Step[] = ctx === undefined ? [] : [...ctx.steps];
    return { counterexample: { options, ...(swarm === undefined ? {} : { swarm }), steps }, error };
  }
}

function failureOf(error: unknown): Failure | undefined {
  if (error instanceof PropertyViolation) return { kind: 'violation', check: error.check, message: error.message };
  if (error instanceof ImplementationError) {
    return { kind: 'implementation-error', assertion: error.assertion, operation: error.operation, message: error.rawMessage };
  }
  return undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Whether QEMU is there when the run needs it; the message when it is not. */
async function qemuMissing(needed: boolean): Promise<QemuMissingError | undefined> {
  if (!needed) return undefined;
  try {
    await qemuVersion();
    return undefined;
  } catch (error) {
    if (error instanceof QemuMissingError) return error;
    throw error;
  }
}

/**
 * The fast-check seed a property runs with: the run's seed mixed with the
 * property's name, so that the properties of one gate run explore different
 * sequences while `--seed S --property P` still names one exact run.
 */
export function propertySeed(seed: number, property: string): number {
  return (seed ^ hashSeed(property)) | 0;
}

/** The property's sequence defaults under the caller's, with chain ops on where the property takes them for `impl` (unless the caller says). */
export function sequenceConstraintsFor(def: PropertyDefinition, impl: ImplName, caller: SequenceConstraints = {}): SequenceConstraints {
  const merged = { ...def.sequence, ...caller };
  return { ...merged, chains: merged.chains ?? (def.chainImpls ?? []).includes(impl) };
}

/** Whether image constraints leave room for extended-L2 images (version 3, clusters of 16 KiB or more). */
function extendedL2Possible(c: ImageOptionsConstraints = {}): boolean {
  return (c.versions ?? [3]).includes(3) && (c.clusterBitsMax ?? extendedL2ClusterBitsMin) >= extendedL2ClusterBitsMin;
}

export async function runProperty(c: RunConstraints): Promise<RunResult> {
  const def = properties[c.property];
  const impl = c.impl ?? 'ts';
  const seed = c.seed ?? fc.readConfigureGlobal().seed;
  if (seed === undefined) throw new RangeError('runProperty needs a seed (constraints.seed or fc.configureGlobal({ seed }))');
  const now = c.now ?? (() => 0);
  const start = now();
  const coverage = emptyCoverage();
  const common = () => ({ property: def.name, impl, coverage, timeMs: now() - start });
  const missing = await qemuMissing(def.needsQemu || impl === 'qemu');
  if (missing !== undefined) return { ...common(), status: 'oracle-unavailable', seed, runs: 0, message: missing.message, cause: missing };
  const planned = await planFor(impl, c.plan, [def], c.requestTimeoutMs);
  if (!('plan' in planned)) return { ...common(), status: 'harness-error', seed, runs: 0, message: planned.message, cause: planned.cause };
  const { plan } = planned;

  let shrinking = false;
  let shrinkAttempts = c.path === undefined ? (c.shrinkAttemptsMax ?? Infinity) : 0;
  let shrinkStop: 'time' | 'attempts' | 'hang' | undefined;
  let sequences = 0;
  let stoppedByDeadline = false;
  let lastFailure: Attempt | undefined;
  // set at the first failure: the earlier of shrinkDeadline and shrinkTimeMs after it
  let shrinkDeadline = c.shrinkDeadline;
  const progress = c.onProgress ?? (() => undefined);
  const constraints = sequenceConstraintsFor(def, impl, { ...plan.sequence(def), ...c.sequence });
  const image = { ...(extendedL2Possible(constraints.image) ? { extendedL2Percent } : {}), ...constraints.image };
  const property = fc.asyncProperty(sequence({ ...constraints, image }), async (seq: Sequence) => {
    if (shrinking) {
      // out of budget: every further candidate "passes", so fast-check keeps the last failure
      if (shrinkDeadline !== undefined && now() >= shrinkDeadline) shrinkStop ??= 'time';
      if (shrinkAttempts <= 0) shrinkStop ??= 'attempts';
      if (shrinkStop !== undefined) return;
      shrinkAttempts--;
    } else if (stoppedByDeadline || (sequences > 0 && c.deadline !== undefined && now() >= c.deadline)) {
      // the time budget is spent: the remaining runs pass without running
      stoppedByDeadline = true;
      return;
    }
    // Let the event loop turn between sequences: an in-memory engine can run for minutes on
    // promise continuations alone, and progress timers and other I/O must not starve meanwhile.
    await new Promise<void>((resolve) => setImmediate(resolve));
    // shrink attempts re-run sequences: only completed fresh sequences count as coverage
    const cov = emptyCoverage();
    const wasShrinking = shrinking;
    // the first sequence of the run may go on to the hard deadline, so that a run judges at least one when it can
    const stopAt = wasShrinking ? shrinkDeadline : sequences > 0 ? c.deadline : c.hardDeadline;
    if (!wasShrinking) c.onSequence?.(seq.options, seq.swarm);
    recordSequenceStart(cov, seq.options, seq.swarm);
    const failed = await runSequence(
      plan.factory(def),
      seq.options,
      checksOf(def, impl),
      cov,
      seq.swarm,
      (model, ctx) => fc.asyncModelRun(() => ({ model, real: ctx }), seq.commands),
      { onStep: () => progress({ kind: 'step', shrinking: wasShrinking }), timeUp: () => stopAt !== undefined && now() >= stopAt },
    );
    if (failed?.error instanceof BudgetSpent) {
      // cut off: no verdict either way, so the candidate "passes" and nothing is counted
      if (wasShrinking) shrinkStop ??= 'time';
      else stoppedByDeadline = true;
      return;
    }
    if (wasShrinking) {
      progress({ kind: 'shrink-attempt', failed: failed !== undefined });
    } else {
      sequences++;
      mergeCoverage(coverage, cov);
      progress({ kind: 'sequence', operations: cov.operations });
    }
    if (failed === undefined) return;
    if (!shrinking) {
      progress({ kind: 'failure' });
      if (c.shrinkTimeMs !== undefined) shrinkDeadline = Math.min(shrinkDeadline ?? Infinity, now() + c.shrinkTimeMs);
    }
    shrinking = true;
    lastFailure = failed;
    if (isAdapterHang(failed.error)) shrinkStop ??= 'hang';
    throw failed.error;
  });
  const details = await fc.check(property, {
    seed: propertySeed(seed, def.name),
    ...(c.path === undefined ? {} : { path: c.path }),
    ...(c.numRuns === undefined ? {} : { numRuns: c.numRuns }),
  });
  const base = { ...common(), seed, runs: sequences, ...(stoppedByDeadline ? { stoppedEarly: 'time' as const } : {}) };
  if (!details.failed) {
    if (details.interrupted) return { ...base, status: 'harness-error', message: 'the run was interrupted', cause: undefined };
    return { ...base, status: 'passed' };
  }
  const error = lastFailure?.error ?? details.errorInstance;
  const path = details.counterexamplePath ?? undefined;
  if (error instanceof QemuMissingError) return { ...base, status: 'oracle-unavailable', message: error.message, cause: error };
  const failure = failureOf(error);
  if (failure === undefined || lastFailure === undefined) {
    return { ...base, status: 'harness-error', message: messageOf(error), path, counterexample: lastFailure?.counterexample, cause: error };
  }
  return {
    ...base,
    status: 'property-failed',
    path,
    counterexample: lastFailure.counterexample,
    shrinks: details.numShrinks,
    ...(shrinkStop === undefined ? {} : { shrinkStoppedEarly: shrinkStop }),
    failure,
    replay: replayCommand(impl, def.name, seed, path),
    cause: error,
  };
}

/**
 * The plan for `impl`, or why these properties cannot run on it: the
 * implementation failed its handshake, or a property does not apply to it.
 */
async function planFor(
  impl: ImplName,
  given: ImplementationPlan | undefined,
  defs: readonly PropertyDefinition[],
  requestTimeoutMs: number | undefined,
): Promise<{ readonly plan: ImplementationPlan } | { readonly message: string; readonly cause: unknown }> {
  let plan: ImplementationPlan;
  try {
    plan = given ?? (await planImplementation(impl, requestTimeoutMs === undefined ? {} : { requestTimeoutMs }));
  } catch (error) {
    if (error instanceof ImplementationError) return { message: `the implementation failed its handshake: ${error.rawMessage}`, cause: error };
    throw error;
  }
  for (const def of defs) {
    const reason = plan.notApplicable(def);
    if (reason !== undefined) return { message: `property ${def.name} does not apply to ${impl}: ${reason}`, cause: undefined };
  }
  return { plan };
}

export interface ReplayConstraints {
  readonly impl: ImplName;
  readonly options: ImageOptions;
  readonly ops: readonly Step[];
  /** The properties whose checks run (outcomes and reads are always compared). */
  readonly properties: readonly PropertyName[];
  /** How a user reproduces this sequence (e.g. a corpus command); shown as the Replay line. */
  readonly replayHint?: string;
  readonly now?: () => number;
}

/** Runs one explicit sequence, deterministically, without fast-check. */
export async function replayOps(c: ReplayConstraints): Promise<RunResult> {
  const now = c.now ?? (() => 0);
  const start = now();
  const defs = c.properties.map((name) => properties[name]);
  const label = c.properties.join('+');
  const coverage = emptyCoverage();
  const common = () => ({ property: label, impl: c.impl, coverage, timeMs: now() - start, runs: 1 });
  const missing = await qemuMissing(c.impl === 'qemu' || defs.some((d) => d.needsQemu));
  if (missing !== undefined) return { ...common(), status: 'oracle-unavailable', message: missing.message, cause: missing };
  const planned = await planFor(c.impl, undefined, defs, undefined);
  if (!('plan' in planned)) return { ...common(), status: 'harness-error', message: planned.message, cause: planned.cause };
  recordSequenceStart(coverage, c.options, undefined);
  const checks = defs.flatMap((d) => checksOf(d, c.impl)).filter((check, i, all) => all.indexOf(check) === i);
  // the property with a driver of its own (handoff, the readers) decides it; else the implementation's
  const driver = planned.plan.factory(defs.find((d) => d.driver !== undefined || d.drivers !== undefined || d.readerOf !== undefined) ?? defs[0] ?? properties.readsAndOutcomes);
  const failed = await runSequence(driver, c.options, checks, coverage, undefined, async (model, ctx) => {
    for (const step of c.ops) await ctx.runStep(model, step);
  });
  if (failed === undefined) return { ...common(), status: 'passed' };
  if (failed.error instanceof QemuMissingError) return { ...common(), status: 'oracle-unavailable', message: failed.error.message, cause: failed.error };
  const failure = failureOf(failed.error);
  if (failure === undefined) {
    return { ...common(), status: 'harness-error', message: messageOf(failed.error), counterexample: failed.counterexample, cause: failed.error };
  }
  return {
    ...common(),
    status: 'property-failed',
    counterexample: failed.counterexample,
    shrinks: 0,
    failure,
    replay: c.replayHint ?? `replayOps with the image options and the ${c.ops.length} steps above`,
    cause: failed.error,
  };
}
