// The conformance gate as a workload: `qcow2-verify gate` at a fixed budget,
// against the engine and against QEMU, reported as sequences judged per
// minute. A sequence is one image's operation sequence with all of its
// property's checks, so the rate is what a CI budget buys. The gate's own
// exit code is reported, not hidden: a rate of a failing gate is marked.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { measureExit, type Measurement } from './measure.js';

export type GateImpl = 'ts' | 'qemu';

export interface GateRun {
  readonly impl: GateImpl;
  /** `--runs` per property; undefined: the gate's default budget. */
  readonly runs: number | undefined;
  readonly sequences: number;
  readonly operations: number;
  /** 0 every property held (known QEMU divergences included), 1 a property failed. */
  readonly exitCode: number;
  readonly measurement: Measurement;
}

interface GateJson {
  readonly results: readonly { readonly coverage: { readonly sequences: number; readonly operations: number } }[];
}

/** Sequences and operations over every result of a `gate --json` file. */
export function gateTotals(json: GateJson): { sequences: number; operations: number } {
  let sequences = 0;
  let operations = 0;
  for (const r of json.results) {
    sequences += r.coverage.sequences;
    operations += r.coverage.operations;
  }
  return { sequences, operations };
}

/** Runs `node cliMain gate --impl IMPL [--runs N] --seed SEED` in `dir` and counts what it judged. */
export async function measureGate(cliMain: string, nodeArgs: readonly string[], dir: string, impl: GateImpl, runs: number | undefined, seed: number): Promise<GateRun> {
  const json = join(dir, `gate-${impl}.json`);
  const args = [...nodeArgs, cliMain, 'gate', '--impl', impl, '--seed', String(seed), '--json', json, ...(runs === undefined ? [] : ['--runs', String(runs)])];
  const { measurement, exitCode } = await measureExit(process.execPath, args, undefined, { okExitCodes: [0, 1] });
  const totals = gateTotals(JSON.parse(await readFile(json, 'utf8')) as GateJson);
  return { impl, runs, ...totals, exitCode, measurement };
}

export function sequencesPerMinute(run: GateRun): number {
  return (run.sequences * 60) / run.measurement.wallSeconds;
}

/** A Markdown table of gate runs, engine and QEMU side by side as in the workload table. */
export function formatGateTable(runs: readonly GateRun[]): string {
  const header = ['gate run', 'sequences', 'operations', 'wall s', 'sequences/min', 'peak RSS MiB', 'verdict'];
  const body = runs.map((r) => [
    `gate --impl ${r.impl} ${r.runs === undefined ? '(default budget)' : `--runs ${r.runs}`}`,
    String(r.sequences),
    String(r.operations),
    r.measurement.wallSeconds.toFixed(1),
    sequencesPerMinute(r).toFixed(0),
    (r.measurement.peakRssBytes / (1 << 20)).toFixed(1),
    r.exitCode === 0 ? 'held' : 'a property failed',
  ]);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...body.map(line)].join('\n');
}
