// Human report of a run. A failure starts the way fast-check's does, so the
// lines a user pastes (seed/path, replay) are where they expect them.
import type { ImageOptions } from '../../model/index.js';
import { formatSwarm } from '../arbitraries/swarm.js';
import type { Coverage } from '../coverage.js';
import { formatStep } from '../steps.js';
import type { Counterexample, Failure, RunResult } from './run-result.js';

export function formatOptions(o: ImageOptions): string {
  const cs = 2 ** o.clusterBits;
  const size = cs >= 1024 ? `${cs / 1024} KiB` : `${cs} B`;
  return `v${o.version}, ${size} clusters${o.extendedL2 === true ? ' (extended L2: 32 subclusters each)' : ''}, ${o.refcountBits}-bit refcounts, lazy refcounts ${o.lazyRefcounts ? 'on' : 'off'}, ${o.compressionType ?? 'zlib'} compression, virtual size 0x${o.virtualSize.toString(16)} (${o.virtualSize} bytes)`;
}

function formatFailure(f: Failure): string {
  switch (f.kind) {
    case 'violation':
      return f.message;
    case 'implementation-error':
      return `${f.assertion ? 'implementation assertion failed' : 'implementation error'} in ${f.operation}: ${f.message}`;
    default: {
      const never: never = f;
      throw new Error(`unknown failure ${JSON.stringify(never)}`);
    }
  }
}

function formatCounterexample(c: Counterexample): string[] {
  const lines = [`Image: ${formatOptions(c.options)}`];
  if (c.swarm !== undefined) lines.push(`Swarm: ${formatSwarm(c.swarm)}`);
  lines.push('Counterexample:', ...c.steps.map((s) => `  ${formatStep(s)}`));
  return lines;
}

function histogram(h: Record<string, number>): string {
  const entries = Object.entries(h).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '(none)' : entries.map(([k, v]) => `${k}=${v}`).join(' ');
}

export function formatCoverage(c: Coverage): string {
  return [
    `  sequences ${c.sequences}, operations ${c.operations}`,
    `  ops:            ${histogram(c.opsByKind)}`,
    `  outcomes:       ${histogram(c.outcomes)}`,
    `  cluster kinds:  ${histogram(c.clusterKinds)}`,
    `  growths:        refcount table ${c.refcountTableGrowths}, L1 ${c.l1Growths}; snapshots alive max ${c.snapshotsAliveMax}`,
    `  L1 cluster crossed with snapshots: ${histogram(c.l1ClusterCrossings)}`,
    `  snapshot names: ${histogram(c.snapshotLookups)}`,
    `  images:         ${histogram(c.versions)}; cluster bits ${histogram(c.clusterBits)}; refcount bits ${histogram(c.refcountBits)}; compression ${histogram(c.compressionTypes)}; lazy ${c.lazyRefcounts}`,
    `  swarm off:      ${histogram(c.swarmOff)}`,
    `  compressed:     ${histogram(c.compressedLayout)} (summed over sampled images)`,
    `  extended L2:    ${c.extendedL2} sequences; subclusters ${histogram(c.subclusters)}`,
    ...(Object.keys(c.faults).length === 0 ? [] : [`  faults:         ${histogram(c.faults)}`]),
    `  backing chains: ${histogram(c.chains)}`,
  ].join('\n');
}

function shrinkNote(stop: 'time' | 'attempts' | 'hang' | undefined): string {
  if (stop === undefined) return '';
  if (stop === 'hang') return ' (not shrunk: the implementation hung, and every attempt would wait out a request timeout)';
  return stop === 'time' ? ' (shrinking stopped early: the time budget is spent; a smaller counterexample may exist)' : ' (shrinking stopped early: attempt cap reached)';
}

/** One ordered chain picks the headline (execa's getErrorPrefix). */
export function formatText(r: RunResult): string {
  const where = `${r.property} (impl ${r.impl})`;
  const time = `${(r.timeMs / 1000).toFixed(1)} s`;
  switch (r.status) {
    case 'passed':
      return `Property ${where} held after ${r.runs} runs in ${time} (seed ${r.seed ?? 'n/a'})`;
    case 'property-failed':
      return [
        `Property failed after ${r.runs} runs`,
        // a replay of saved steps has no seed: its Replay line says what to run
        ...(r.seed === undefined ? [] : [`{ seed: ${r.seed}, path: ${JSON.stringify(r.path ?? '')} }`]),
        `Property: ${where}`,
        ...formatCounterexample(r.counterexample),
        `Shrunk ${r.shrinks} times${shrinkNote(r.shrinkStoppedEarly)}`,
        `Failure: ${formatFailure(r.failure)}`,
        `Replay: ${r.replay}`,
      ].join('\n');
    case 'oracle-unavailable':
      return `Property ${where} cannot run: the QEMU oracle is unavailable: ${r.message}`;
    case 'harness-error':
      return [
        `Property ${where} could not be judged: harness error after ${r.runs} runs: ${r.message}`,
        ...(r.seed === undefined ? [] : [`{ seed: ${r.seed}, path: ${JSON.stringify(r.path ?? '')} }`]),
        ...(r.counterexample === undefined ? [] : formatCounterexample(r.counterexample)),
      ].join('\n');
    default: {
      const never: never = r;
      throw new Error(`unknown run result ${JSON.stringify(never)}`);
    }
  }
}
