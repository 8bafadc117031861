// The gate's files: the JSON and JUnit reports a CI reads, and one QEMU shell
// script per failure (properties/report/repro-script.ts). The JSON starts with
// what a CI needs to file the run: the tool and QEMU versions, the seed, the
// budget, the verdict and exit code, then one result per property run.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { qemuVersion } from '../../oracle/index.js';
import { toolVersion } from '../../corpus/provenance.js';
import { failedRunPage } from '../../corpus/replay/html-page.js';
import { formatJunit, type Coverage, type RunResult } from '../../properties/index.js';
import { toJsonValue } from '../../properties/report/format-json.js';
import { implFileWord } from '../../properties/report/run-result.js';
import { formatText } from '../../properties/report/format-text.js';
import { saveReproScript } from '../../properties/report/save-repro-script.js';
import { exitCodes } from '../exit-codes.js';
import { junitKnownTestcase, knownLabel, type KnownDivergence } from './gate-divergences.js';
import type { GateOptions } from './gate.js';

/** One property run of the gate; a run that hit a known QEMU divergence carries it. */
export interface GateEntry {
  readonly result: RunResult;
  readonly known?: KnownDivergence;
}

export type GateVerdict = 'passed' | 'failed' | 'cannot-run';

export function gateVerdict(code: number): GateVerdict {
  return code === exitCodes.ok ? 'passed' : code === exitCodes.propertyFailed ? 'failed' : 'cannot-run';
}

export interface GateOutcome {
  /** A cmd: implementation's handshake: name, version, mode. */
  readonly implementation?: { readonly name: string; readonly version: string; readonly mode: string };
  /** What the gate did not draw for this implementation (gate.ts leftOutLines). */
  readonly leftOut: readonly string[];
  readonly code: number;
  readonly verdict: GateVerdict;
  readonly elapsedMs: number;
  readonly coverage: Coverage;
}

/** Writes a failed run's HTML page (corpus/replay/html-page.ts) into `dir`, named after its property, implementation, seed and path; returns its path. */
export async function writeFailurePage(dir: string, run: Extract<RunResult, { status: 'property-failed' }>): Promise<string> {
  const path = join(dir, `${run.property}-${implFileWord(run.impl)}-seed${run.seed ?? 0}-${(run.path ?? '').replaceAll(':', '.') || 'replay'}`.slice(0, 120) + '.html');
  await mkdir(dir, { recursive: true });
  await writeFile(path, await failedRunPage(run));
  return path;
}

/** Writes each failure's script and data files into its own directory under `dir`; returns the script paths. */
export async function writeReproScripts(dir: string, entries: readonly GateEntry[]): Promise<Map<GateEntry, string>> {
  const paths = new Map<GateEntry, string>();
  for (const e of entries) {
    const r = e.result;
    if (r.status !== 'property-failed') continue;
    const where = join(dir, `${r.property}-${implFileWord(r.impl)}-seed${r.seed ?? 0}-${(r.path ?? '').replaceAll(':', '.') || 'replay'}`.slice(0, 120));
    const failureLine = formatText(r).split('\n').find((l) => l.startsWith('Failure: ')) ?? '';
    const path = await saveReproScript(where, r.counterexample, [
      `qcow2-verify gate: ${r.property} failed against ${r.impl}${e.known === undefined ? '' : ` (${knownLabel(e.known)})`}`,
      failureLine,
      `Replay: ${r.replay}`,
    ]);
    paths.set(e, path);
  }
  return paths;
}

/** `qemu` (qemu-img's release, as before) and the binaries that ran with their whole version lines (QEMU_IMG / QEMU_IO may name a build tree's). */
async function qemuVersionFields(): Promise<{ qemu: string; qemuImg?: { path: string; version: string }; qemuIo?: { path: string; version: string } }> {
  return qemuVersion().then(
    (v) => ({ qemu: v.qemuImg.split(' ')[0] ?? v.qemuImg, qemuImg: { path: v.qemuImgPath, version: v.qemuImg }, qemuIo: { path: v.qemuIoPath, version: v.qemuIo } }),
    () => ({ qemu: 'unavailable' }),
  );
}

/** JUnit `<properties>` naming the QEMU binaries that ran, when they are known. */
async function junitQemuProperties(): Promise<Record<string, string>> {
  return qemuVersion().then(
    (v) => ({ 'qemu-img': `${v.qemuImg} (${v.qemuImgPath})`, 'qemu-io': `${v.qemuIo} (${v.qemuIoPath})` }),
    () => ({}),
  );
}

export async function gateJson(o: GateOptions, entries: readonly GateEntry[], scripts: ReadonlyMap<GateEntry, string>, outcome: GateOutcome): Promise<string> {
  const results = entries.map((e) => ({
    ...toJsonValue(e.result),
    ...(e.known === undefined
      ? {}
      : { [e.known.owner === 'QEMU' ? 'knownQemuDivergence' : 'knownDivergence']: { case: e.known.caseFile, identity: e.known.identity, signature: e.known.signature } }),
    ...(scripts.has(e) ? { reproScript: scripts.get(e) } : {}),
  }));
  const report = {
    tool: await toolVersion(),
    ...(await qemuVersionFields()),
    seed: o.seed,
    ...(o.shard.count === 1 ? {} : { shard: { index: o.shard.index + 1, count: o.shard.count, seed: o.campaignSeed } }),
    impl: o.impl,
    ...(outcome.implementation === undefined ? {} : { implementation: outcome.implementation }),
    properties: o.properties,
    leftOut: outcome.leftOut,
    budget: o.path !== undefined ? { kind: 'path', path: o.path } : o.budget.kind === 'time' ? { kind: 'time', ms: o.budget.ms } : { kind: 'runs', perProperty: o.budget.count },
    workers: o.workers,
    verdict: outcome.verdict,
    exitCode: outcome.code,
    elapsedMs: Math.round(outcome.elapsedMs),
    sequences: outcome.coverage.sequences,
    operations: outcome.coverage.operations,
    results,
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}

function junitWithKnown(entries: readonly GateEntry[], suiteProperties: Readonly<Record<string, string>>): string {
  const known = entries.filter((e) => e.known !== undefined);
  const xml = formatJunit(
    entries.filter((e) => e.known === undefined).map((e) => e.result),
    suiteProperties,
  );
  if (known.length === 0) return xml;
  const cases = known.map((e) => junitKnownTestcase(e.result, e.known as KnownDivergence)).join('\n');
  return xml
    .replace(/^<testsuite name="qcow2-verify gate" tests="(\d+)"/m, (_m, n: string) => `<testsuite name="qcow2-verify gate" tests="${Number(n) + known.length}" skipped="${known.length}"`)
    .replace('</testsuite>', `${cases}\n</testsuite>`);
}

export async function writeGateReports(o: GateOptions, entries: readonly GateEntry[], scripts: ReadonlyMap<GateEntry, string>, outcome: GateOutcome): Promise<void> {
  if (o.json !== undefined) await writeFile(o.json, await gateJson(o, entries, scripts, outcome));
  if (o.junit !== undefined) await writeFile(o.junit, junitWithKnown(entries, await junitQemuProperties()));
}
