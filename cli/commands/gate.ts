// `qcow2-verify gate`: the conformance gate. Runs the model-based properties
// against an implementation with a budget, prints the seed first and a coverage
// summary last, and exits 0 only when every property held; 1 when one failed
// (with its replay command); 2 when the gate could not judge (QEMU missing, a
// harness error) — never green without a verdict.
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  emptyCoverage,
  formatCoverage,
  formatJson,
  formatJunit,
  formatOptions,
  formatSwarm,
  formatText,
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
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';

// Registered by gate-command.ts (light), which loads this module when gate runs.
export { registerGate } from './gate-command.js';

/** Sequences per unit of property cost when no --runs is given: about a minute on 2 cores for all five. */
export const defaultRunsPerCost = 25;

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
}

function usage(message: string): never {
  throw new CliError(message, exitCodes.usage);
}

/** Pure: validates commander's raw options. `drawSeed` picks a seed when none was given. */
export function parseGateOptions(raw: RawGateOptions, drawSeed: () => number): GateOptions {
  const impl = raw.impl ?? 'ts';
  if (!(implNames as readonly string[]).includes(impl)) usage(`--impl must be one of ${implNames.join(', ')}, got ${impl}`);
  let runs: number | undefined;
  if (raw.runs !== undefined) {
    runs = Number(raw.runs);
    if (!Number.isSafeInteger(runs) || runs < 1) usage(`--runs must be a positive integer, got ${raw.runs}`);
  }
  let seed: number;
  try {
    seed = raw.seed === undefined ? drawSeed() : parseSeed(raw.seed);
  } catch (error) {
    if (error instanceof SeedError) usage(`--seed: ${error.message}`);
    throw error;
  }
  let selected: PropertyName[] = [...propertyNames];
  if (raw.property !== undefined) {
    if (!isPropertyName(raw.property)) usage(`--property must be one of ${propertyNames.join(', ')}, got ${raw.property}`);
    selected = [raw.property];
  }
  if (raw.path !== undefined && (raw.seed === undefined || raw.property === undefined)) {
    usage('--path replays one failure: give it with the --seed and --property it was printed with');
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
  };
}

/** The exit code a set of results earns: a failure wins over "could not judge". */
export function gateExitCode(results: readonly RunResult[]): number {
  if (results.some((r) => r.status === 'property-failed')) return exitCodes.propertyFailed;
  if (results.some((r) => r.status === 'oracle-unavailable' || r.status === 'harness-error')) return exitCodes.cannotRun;
  return exitCodes.ok;
}

export async function runGate(o: GateOptions, out: (line: string) => void): Promise<number> {
  const started = performance.now();
  out(`qcow2-verify gate: seed ${o.seed}${o.seedGiven ? '' : ' (drawn; pass --seed to repeat)'}, impl ${o.impl}`);
  const runsOf = (p: PropertyName) => o.runs ?? (o.path === undefined ? defaultRunsPerCost * properties[p].cost : 1);
  out(`properties: ${o.properties.map((p) => `${p} (${runsOf(p)} runs)`).join(', ')}${o.path === undefined ? '' : `; replaying path ${o.path}`}`);
  const results: RunResult[] = [];
  for (const name of o.properties) {
    const result = await runProperty({
      property: name,
      impl: o.impl,
      seed: o.seed,
      ...(o.path === undefined ? {} : { path: o.path }),
      numRuns: runsOf(name),
      now: () => performance.now(),
      ...(o.verbose ? { onSequence: (opt, swarm) => out(`  [${name}] ${formatOptions(opt)}; swarm ${formatSwarm(swarm)}`) } : {}),
    });
    results.push(result);
    out(formatText(result));
  }
  const coverage = results.reduce((acc, r) => mergeCoverage(acc, r.coverage), emptyCoverage());
  const kinds = Object.keys(coverage.clusterKinds).sort();
  out(
    `summary: ${results.filter((r) => r.status === 'passed').length}/${results.length} properties held; ` +
      `${coverage.sequences} sequences, ${coverage.operations} operations; cluster kinds covered: ${kinds.join(', ') || 'none'}; ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  if (o.verbose) out(formatCoverage(coverage));
  for (const r of results) if (r.status === 'property-failed') out(`Replay: ${r.replay}`);
  if (o.json !== undefined) await writeFile(o.json, formatJson(results));
  if (o.junit !== undefined) await writeFile(o.junit, formatJunit(results));
  return gateExitCode(results);
}
