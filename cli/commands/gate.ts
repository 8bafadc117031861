// `qcow2-verify gate`: the conformance gate. Runs the model-based properties
// against an implementation with a budget, prints the seed first and a coverage
// summary last, and exits 0 only when every property held; 1 when one failed
// (with its replay command); 2 when the gate could not judge (QEMU missing, a
// harness error) — never green without a verdict. With --impl qemu, a failure
// that is a known QEMU divergence of the corpus (the same fault, caused by the
// same operation, whoever noticed it) is reported as such
// and does not fail the gate (gate-divergences.ts); the property then goes on
// with a fresh seed for the rest of its budget.
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  emptyCoverage,
  formatCoverage,
  formatJunit,
  formatOptions,
  formatSwarm,
  formatText,
  hashSeed,
  implNames,
  isPropertyName,
  mergeCoverage,
  parseSeed,
  properties,
  propertyNames,
  runProperty,
  SeedError,
  type ImplName,
  type PropertyName,
  type RunResult,
} from '../../properties/index.js';
import { toJsonValue } from '../../properties/report/format-json.js';
import { defaultCorpusDir } from '../../corpus/store.js';
import { exitCodes } from '../exit-codes.js';
import { usageError } from '../fatal.js';
import {
  formatKnownDivergence,
  junitKnownTestcase,
  knownLabel,
  loadKnownQemuDivergences,
  matchKnownDivergence,
  type KnownDivergence,
  type KnownDivergences,
} from './gate-divergences.js';

// Registered by gate-command.ts (light), which loads this module when gate runs.
export { registerGate } from './gate-command.js';

/** Sequences per unit of property cost when no --runs is given: about a minute on 2 cores for all six. */
export const defaultRunsPerCost = 21;

/** Known divergences one property may hit before the gate stops re-running it (each one costs a shrink). */
export const knownDivergencesPerPropertyMax = 5;

export interface GateOptions {
  readonly impl: ImplName;
  readonly runs: number | undefined;
  readonly seed: number;
  readonly seedGiven: boolean;
  readonly path: string | undefined;
  readonly properties: readonly PropertyName[];
  readonly json: string | undefined;
  readonly junit: string | undefined;
  readonly verbose: boolean;
  /** Corpora whose known-qemu-divergence cases a failure against QEMU may match. */
  readonly corpusDirs: readonly string[];
}

export interface RawGateOptions {
  impl?: string;
  runs?: string;
  seed?: string;
  path?: string;
  property?: string;
  json?: string;
  junit?: string;
  verbose?: boolean;
  corpus?: string;
}


/** Pure: validates commander's raw options. `drawSeed` picks a seed when none was given. */
export function parseGateOptions(raw: RawGateOptions, drawSeed: () => number): GateOptions {
  const impl = raw.impl ?? 'ts';
  if (!(implNames as readonly string[]).includes(impl)) usageError(`--impl must be one of ${implNames.join(', ')}, got ${impl}`);
  let runs: number | undefined;
  if (raw.runs !== undefined) {
    runs = Number(raw.runs);
    if (!Number.isSafeInteger(runs) || runs < 1) usageError(`--runs must be a positive integer, got ${raw.runs}`);
  }
  let seed: number;
  try {
    seed = raw.seed === undefined ? drawSeed() : parseSeed(raw.seed);
  } catch (error) {
    if (error instanceof SeedError) usageError(`--seed: ${error.message}`);
    throw error;
  }
  let selected: PropertyName[] = [...propertyNames];
  if (raw.property !== undefined) {
    if (!isPropertyName(raw.property)) usageError(`--property must be one of ${propertyNames.join(', ')}, got ${raw.property}`);
    selected = [raw.property];
  }
  if (raw.path !== undefined && (raw.seed === undefined || raw.property === undefined)) {
    usageError('--path replays one failure: give it with the --seed and --property it was printed with');
  }
  return {
    impl: impl as ImplName,
    runs,
    seed,
    seedGiven: raw.seed !== undefined,
    path: raw.path,
    properties: selected,
    json: raw.json,
    junit: raw.junit,
    verbose: raw.verbose ?? false,
    // the bundled corpus always counts; --corpus adds the user's own
    corpusDirs: [...new Set([defaultCorpusDir(), ...(raw.corpus === undefined ? [] : [resolve(raw.corpus)])])],
  };
}

/** The exit code a set of results earns: a failure wins over "could not judge". */
export function gateExitCode(results: readonly RunResult[]): number {
  if (results.some((r) => r.status === 'property-failed')) return exitCodes.propertyFailed;
  if (results.some((r) => r.status === 'oracle-unavailable' || r.status === 'harness-error')) return exitCodes.cannotRun;
  return exitCodes.ok;
}

/** One property run of the gate; a run that hit a known QEMU divergence carries it. */
export interface GateEntry {
  readonly result: RunResult;
  readonly known?: KnownDivergence;
}

/**
 * The seed a property goes on with after its `attempt`-th known divergence:
 * derived from the gate's seed, non-negative (a `--seed -5` would read as an option).
 */
export function continuationSeed(seed: number, property: string, attempt: number): number {
  return hashSeed(`${seed}/${property}/${attempt}`) >>> 1;
}

/** Runs one property with its budget; after a known divergence, the rest of the budget with a continuation seed. */
async function runBudget(
  o: GateOptions,
  name: PropertyName,
  runs: number,
  known: KnownDivergences,
  out: (line: string) => void,
): Promise<GateEntry[]> {
  const entries: GateEntry[] = [];
  let seed = o.seed;
  let remaining = runs;
  for (let attempt = 1; ; attempt++) {
    const result = await runProperty({
      property: name,
      impl: o.impl,
      seed,
      ...(o.path === undefined ? {} : { path: o.path }),
      numRuns: remaining,
      now: () => performance.now(),
      ...(o.verbose ? { onSequence: (opt, swarm) => out(`  [${name}] ${formatOptions(opt)}; swarm ${formatSwarm(swarm)}`) } : {}),
    });
    const divergence = matchKnownDivergence(result, known);
    entries.push(divergence === undefined ? { result } : { result, known: divergence });
    out(divergence === undefined ? formatText(result) : formatKnownDivergence(result, divergence));
    remaining -= result.runs;
    if (divergence === undefined || o.path !== undefined || remaining <= 0) return entries;
    if (attempt >= knownDivergencesPerPropertyMax) {
      out(`${name}: ${attempt} known QEMU divergences; the remaining ${remaining} runs are skipped`);
      return entries;
    }
    seed = continuationSeed(o.seed, name, attempt);
    out(`${name}: going on with seed ${seed} for the remaining ${remaining} runs`);
  }
}

function junitWithKnown(entries: readonly GateEntry[]): string {
  const known = entries.filter((e) => e.known !== undefined);
  const xml = formatJunit(entries.filter((e) => e.known === undefined).map((e) => e.result));
  if (known.length === 0) return xml;
  const cases = known.map((e) => junitKnownTestcase(e.result, e.known as KnownDivergence)).join('\n');
  return xml
    .replace(/^<testsuite name="qcow2-verify gate" tests="(\d+)"/m, (_m, n: string) => `<testsuite name="qcow2-verify gate" tests="${Number(n) + known.length}" skipped="${known.length}"`)
    .replace('</testsuite>', `${cases}\n</testsuite>`);
}

function jsonWithKnown(entries: readonly GateEntry[]): string {
  const results = entries.map((e) => ({
    ...toJsonValue(e.result),
    ...(e.known === undefined ? {} : { knownQemuDivergence: { case: e.known.caseFile, identity: e.known.identity, signature: e.known.signature } }),
  }));
  return `${JSON.stringify({ results }, null, 2)}\n`;
}

export async function runGate(o: GateOptions, out: (line: string) => void): Promise<number> {
  const started = performance.now();
  out(`qcow2-verify gate: seed ${o.seed}${o.seedGiven ? '' : ' (drawn; pass --seed to repeat)'}, impl ${o.impl}`);
  const runsOf = (p: PropertyName) => o.runs ?? (o.path === undefined ? Math.max(1, Math.round(defaultRunsPerCost * properties[p].cost)) : 1);
  out(`properties: ${o.properties.map((p) => `${p} (${runsOf(p)} runs)`).join(', ')}${o.path === undefined ? '' : `; replaying path ${o.path}`}`);
  // Known divergences are QEMU's: a failure of any other implementation always counts.
  const known = o.impl === 'qemu' ? await loadKnownQemuDivergences(o.corpusDirs) : new Map<string, KnownDivergence[]>();
  const entries: GateEntry[] = [];
  const held: PropertyName[] = [];
  for (const name of o.properties) {
    const mine = await runBudget(o, name, runsOf(name), known, out);
    entries.push(...mine);
    if (mine.every((e) => e.known !== undefined || e.result.status === 'passed')) held.push(name);
  }
  const counted = entries.filter((e) => e.known === undefined).map((e) => e.result);
  const knownHits = entries.flatMap((e) => (e.known === undefined ? [] : [e.known]));
  const coverage = entries.reduce((acc, e) => mergeCoverage(acc, e.result.coverage), emptyCoverage());
  const kinds = Object.keys(coverage.clusterKinds).sort();
  const knownText =
    knownHits.length === 0 ? '' : ` (${knownHits.length} known QEMU divergence${knownHits.length === 1 ? '' : 's'}: ${[...new Set(knownHits.map((k) => k.caseFile))].join(', ')})`;
  out(
    `summary: ${held.length}/${o.properties.length} properties held${knownText}; ` +
      `${coverage.sequences} sequences, ${coverage.operations} operations; cluster kinds covered: ${kinds.join(', ') || 'none'}; ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (o.verbose) out(formatCoverage(coverage));
  for (const e of entries) {
    if (e.result.status !== 'property-failed') continue;
    out(e.known === undefined ? `Replay: ${e.result.replay}` : `Replay (${knownLabel(e.known)}): ${e.result.replay}`);
  }
  if (o.json !== undefined) await writeFile(o.json, jsonWithKnown(entries));
  if (o.junit !== undefined) await writeFile(o.junit, junitWithKnown(entries));
  return gateExitCode(counted);
}
