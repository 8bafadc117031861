// The gate command: option parsing is pure, exit codes follow the results, and a
// run against the canary exits 1 with a replay line (never green), the same in
// worker threads as in this process, with a JSON report a CI reads and a QEMU
// shell script saved for the failure.
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { epochNow } from '../../cli/commands/gate-batch.js';
import { abandonLate, gateExitCode, mergePassed, parseGateOptions, runGate } from '../../cli/commands/gate.js';
import { withTempDir } from '../../oracle/index.js';
import { CliError } from '../../cli/fatal.js';
import { emptyCoverage, formatText, type RunResult } from '../../properties/index.js';

const drawn = () => 77;

describe('gate options', () => {
  it('fills defaults and draws a seed only when none is given', () => {
    const o = parseGateOptions({}, drawn);
    expect(o).toMatchObject({ impl: 'ts', budget: { kind: 'time', ms: 60_000 }, seed: 77, seedGiven: false, path: undefined, workers: availableParallelism() });
    expect(o.properties).toEqual(['readsAndOutcomes', 'structure', 'reopen', 'space', 'qemuJudges', 'handoff', 'crashConsistency', 'readsEngineImages', 'readsQemuImages']);
    expect(parseGateOptions({ seed: 'abcdef0', property: 'space', runs: '3' }, drawn)).toMatchObject({ seedGiven: true, properties: ['space'], budget: { kind: 'runs', count: 3 } });
    expect(parseGateOptions({ time: '90s', workers: '1' }, drawn)).toMatchObject({ budget: { kind: 'time', ms: 90_000 }, workers: 1 });
    expect(parseGateOptions({ runs: '3', shrinkTime: '2m' }, drawn).shrinkTimeMs).toBe(120_000);
    expect(o.shrinkTimeMs).toBeUndefined();
  });

  it('refuses bad values with usage errors (exit 2)', () => {
    const bad = [{ impl: 'c' }, { runs: '0' }, { seed: 'x' }, { property: 'nope' }, { path: '1:2' }, { path: '1', seed: '1' }, { time: '0s' }, { time: '1m', runs: '3' }, { workers: '0' }, { shrinkTime: '0s' }];
    for (const raw of bad) {
      expect(() => parseGateOptions(raw, drawn)).toThrow(CliError);
    }
  });

  it('exit code: failure 1 beats cannot-run 2 beats passed 0', () => {
    const base = { property: 'p', impl: 'ts' as const, runs: 1, coverage: emptyCoverage(), timeMs: 0 };
    const passed: RunResult = { ...base, status: 'passed' };
    const cannot: RunResult = { ...base, status: 'oracle-unavailable', message: 'm', cause: undefined };
    const harness: RunResult = { ...base, status: 'harness-error', message: 'm', cause: undefined };
    expect(gateExitCode([passed])).toBe(0);
    expect(gateExitCode([passed, cannot])).toBe(2);
    expect(gateExitCode([harness])).toBe(2);
    expect(gateExitCode([cannot, { ...base, status: 'property-failed', counterexample: { options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 512 }, steps: [] }, shrinks: 0, failure: { kind: 'violation', check: 'read', message: 'x' }, replay: 'r', cause: undefined }])).toBe(1);
  });
});

describe('gate batches', () => {
  it('merges a property\'s passed batches, and a property with no finished sequence is not judged (exit 2)', () => {
    const o = parseGateOptions({ seed: '1', time: '60s' }, drawn);
    const batch = (runs: number): RunResult => ({ status: 'passed', property: 'space', impl: 'ts', seed: 9, runs, coverage: { ...emptyCoverage(), sequences: runs }, timeMs: 10, stoppedEarly: 'time' });
    expect(mergePassed(o, 'space', [batch(3), batch(4)])).toMatchObject({ status: 'passed', seed: 1, runs: 7, timeMs: 20, stoppedEarly: 'time', coverage: { sequences: 7 } });
    const none = mergePassed(o, 'space', [batch(0)]);
    expect(none).toMatchObject({ status: 'harness-error', runs: 0 });
    expect(gateExitCode([none])).toBe(2);
    expect(formatText(none)).toMatch(/^Property space \(impl ts\) could not be judged: harness error after 0 runs: not judged: no sequence finished within the time budget/);
  });
});

describe('a batch left behind', () => {
  it('counts the sequences it finished once its time is up, ignores its late progress, and lets the gate go on (fake clock)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const events = { live: true, sequences: 3, operations: 40 };
      let abandoned = 0;
      const stuck = new Promise<RunResult>(() => undefined); // a step that never ends
      const result = abandonLate(stuck, epochNow() + 1000, 'handoff', 'qemu', 9, events, () => abandoned++);
      await vi.advanceTimersByTimeAsync(1000);
      expect(await result).toMatchObject({ status: 'passed', property: 'handoff', impl: 'qemu', runs: 3, stoppedEarly: 'time', coverage: { sequences: 3, operations: 40 } });
      expect(events.live).toBe(false);
      expect(abandoned).toBe(1);
      const done: RunResult = { status: 'passed', property: 'space', impl: 'ts', seed: 1, runs: 4, coverage: emptyCoverage(), timeMs: 0 };
      const live = { live: true, sequences: 0, operations: 0 };
      expect(await abandonLate(Promise.resolve(done), epochNow() + 1000, 'space', 'ts', 1, live, () => abandoned++)).toBe(done);
      await vi.advanceTimersByTimeAsync(2000);
      expect([live.live, abandoned]).toEqual([true, 1]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('gate run', () => {
  it('catches the canary in worker threads as in this process: seed first, replay line, QEMU script, JSON for CI', async () => {
    await withTempDir(async (dir) => {
      const run = async (workers: string) => {
        const lines: string[] = [];
        const raw = { impl: 'canary', seed: '5', runs: '20', property: 'readsAndOutcomes', workers, json: join(dir, `r${workers}.json`), reproDir: join(dir, `repro${workers}`) };
        const code = await runGate(parseGateOptions(raw, drawn), (l) => lines.push(l));
        return { code, lines };
      };
      const [threads, here] = [await run('2'), await run('1')];
      for (const { code, lines } of [threads, here]) {
        expect(code).toBe(1);
        expect(lines[0]).toBe('qcow2-verify gate: seed 5, impl canary');
      }
      const replays = (lines: string[]) => lines.filter((l) => l.startsWith('Replay: '));
      expect(replays(threads.lines).length).toBeGreaterThan(0);
      // the same batches give the same failures, wherever they run
      expect(replays(threads.lines)).toEqual(replays(here.lines));
      expect(replays(here.lines)[0]).toMatch(/^Replay: qcow2-verify gate --impl canary --property readsAndOutcomes --seed 5 --path "[\d:]+"$/);
      const scriptLine = here.lines[here.lines.indexOf(replays(here.lines)[0]!) + 1]!;
      const script = /^ {2}on QEMU: sh (\S+repro\.sh)$/.exec(scriptLine)?.[1];
      expect(script, scriptLine).toBeDefined();
      expect((await stat(script!)).isFile()).toBe(true);
      const json = JSON.parse(await readFile(join(dir, 'r1.json'), 'utf8')) as Record<string, unknown> & { results: Record<string, unknown>[] };
      expect(json).toMatchObject({ tool: 'qcow2-verify 0.1.0', seed: 5, impl: 'canary', budget: { kind: 'runs', perProperty: 20 }, verdict: 'failed', exitCode: 1 });
      expect(json.qemu).toMatch(/^\d+\.\d+/);
      expect(json.results.find((r) => r.status === 'property-failed')).toMatchObject({ property: 'readsAndOutcomes', reproScript: script });
    });
  });

  it('--html writes one self-contained page per failure, with the failing step marked, and names it', async () => {
    await withTempDir(async (dir) => {
      const lines: string[] = [];
      const raw = { impl: 'canary', property: 'readsAndOutcomes', runs: '5', seed: '7', workers: '1', reproDir: join(dir, 'repro'), html: join(dir, 'html') };
      expect(await runGate(parseGateOptions(raw, drawn), (l) => lines.push(l))).toBe(1);
      const named = lines.find((l) => l.startsWith('  html: '));
      expect(named, lines.join('\n')).toBeDefined();
      const page = await readFile(named!.slice('  html: '.length), 'utf8');
      expect(page).toMatch(/^<!DOCTYPE html>/i);
      expect(page).toContain('class="failing"');
      expect(page).toContain('readsAndOutcomes');
      expect(page).not.toMatch(/<script[^>]+src=|<link[^>]+href=/);
    });
  });

  it('--verbose prints the coverage histogram once, after the summary', async () => {
    const lines: string[] = [];
    const code = await runGate(parseGateOptions({ seed: '3', runs: '2', property: 'readsAndOutcomes', workers: '1', verbose: true }, drawn), (l) => lines.push(l));
    expect(code).toBe(0);
    const text = lines.join('\n');
    expect(text.match(/^ {2}ops: /gm)).toHaveLength(1);
    expect(text.indexOf('  ops: ')).toBeGreaterThan(text.indexOf('summary: '));
    expect(text).toContain('Property readsAndOutcomes (impl ts) held after 2 runs');
  });
});

describe('gate shards', () => {
  it('give each shard of one seed its own seed, the same on every run, with I from --shard or JOB_COMPLETION_INDEX', () => {
    const seeds = [1, 2, 3, 4].map((i) => parseGateOptions({ seed: '5', shard: `${i}/4` }, drawn, {}).seed);
    expect(seeds).toEqual([20, 21, 22, 23]);
    expect(new Set([0, 1, 2, 3].map((k) => parseGateOptions({ seed: '5', shard: '4' }, drawn, { JOB_COMPLETION_INDEX: String(k) }).seed))).toEqual(new Set(seeds));
    expect(parseGateOptions({ seed: '5', shard: '1/1' }, drawn, {})).toMatchObject({ seed: 5, campaignSeed: 5, shard: { index: 0, count: 1 } });
    expect(parseGateOptions({ seed: '2147483647', shard: '2/2' }, drawn, {}).seed).toBe(2147483647); // (2^31 − 1)·2 + 1 mod 2^31
    expect(() => parseGateOptions({ seed: '5', shard: '4' }, drawn, {})).toThrow(/JOB_COMPLETION_INDEX/);
    expect(() => parseGateOptions({ seed: '5', shard: '2/4', property: 'space', path: '0' }, drawn, {})).toThrow(CliError);
  });

  it('prints the shard and its seed, replays with that seed alone, and records the shard in JSON', async () => {
    await withTempDir(async (dir) => {
      const lines: string[] = [];
      const raw = { impl: 'canary', seed: '5', shard: '2/3', runs: '20', property: 'readsAndOutcomes', workers: '1', json: join(dir, 'r.json'), reproDir: join(dir, 'repro') };
      expect(await runGate(parseGateOptions(raw, drawn, {}), (l) => lines.push(l))).toBe(1);
      expect(lines[0]).toBe('qcow2-verify gate: seed 16 (shard 2/3 of seed 5), impl canary');
      expect(lines.find((l) => l.startsWith('Replay: '))).toMatch(/^Replay: qcow2-verify gate --impl canary --property readsAndOutcomes --seed 16 --path "[\d:]+"$/);
      const json = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as Record<string, unknown>;
      expect(json).toMatchObject({ seed: 16, shard: { index: 2, count: 3, seed: 5 } });
    });
  });
});
