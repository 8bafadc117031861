import { describe, expect, it } from 'vitest';
import { withDir } from 'tmp-promise';
import { runCampaign, type CampaignEvent } from '../../corpus/campaign/campaign.js';
import { formatProgress, formatSummary, ProgressPrinter } from '../../corpus/campaign/progress.js';
import { replayPropertyCase } from '../../corpus/replay/replay-case.js';
import { loadCorpus } from '../../corpus/store.js';
import { properties, propertyNames } from '../../properties/index.js';

// the reader properties apply to cmd: implementations only
const tsPropertyNames = propertyNames.filter((name) => properties[name].readerOf === undefined);
import { fuzzExitCode, parseDuration, parseFuzzOptions } from '../../cli/commands/fuzz.js';
import { CliError } from '../../cli/fatal.js';

describe('fuzz campaign', () => {
  it('cycles through every property and the image fuzzer, and every saved failure replays', async () => {
    await withDir(
      async ({ path: dir }) => {
        const events: CampaignEvent[] = [];
        const plan = tsPropertyNames.length + 1;
        const summary = await runCampaign({
          impl: 'ts',
          seed: 42,
          shard: { index: 0, count: 1 },
          budget: { kind: 'runs', count: plan },
          kinds: 'all',
          corpusDir: dir,
          knownDirs: [],
          sequencesPerRun: 2,
          commandsCountMax: 12,
          shrinkImages: false,
          now: () => 0,
          onEvent: (e) => events.push(e),
        });
        expect(summary.cannotRun).toBeUndefined();
        expect(summary.harnessErrors).toEqual([]);
        expect(summary.stats.runs).toBe(plan);
        expect(summary.stats.mutants).toBe(1);
        // Each property run draws 2 sequences (more when one fails and shrinks, which only counts the runs).
        expect(summary.stats.sequences).toBeGreaterThanOrEqual(tsPropertyNames.length);
        expect(events.filter((e) => e.kind === 'run')).toHaveLength(plan);
        // Whatever was found was saved once per signature, and replays to the same signature.
        const saved = await loadCorpus(dir);
        expect(saved.length).toBe(summary.findings.filter((f) => f.isNew).length);
        for (const s of saved) {
          if (s.case.kind !== 'property-failure') continue;
          const again = await replayPropertyCase(s.case, 'ts');
          expect(again.verdict, `${s.id}: ${again.message}`).toBe('reproduced');
        }
      },
      { unsafeCleanup: true },
    );
  });
});

describe('fuzz campaign and known faults', () => {
  // The canary drops every third write: readsAndOutcomes (the first property after the image fuzzer) fails on it
  const campaign = (dir: string, knownFault?: (run: unknown) => Promise<string | undefined>) =>
    runCampaign({
      impl: 'canary',
      seed: 5,
      shard: { index: 0, count: 1 },
      budget: { kind: 'runs', count: 2 },
      kinds: 'all',
      corpusDir: dir,
      knownDirs: [],
      sequencesPerRun: 20,
      shrinkImages: false,
      now: () => 0,
      ...(knownFault === undefined ? {} : { knownFault }),
    });

  it('a failure whose signature is new but whose fault is a known divergence is known, named, and not saved', async () => {
    await withDir(
      async ({ path: dir }) => {
        const asked: unknown[] = [];
        const summary = await campaign(dir, (run) => {
          asked.push(run);
          return Promise.resolve('planted-known.json');
        });
        const failures = summary.findings.filter((f) => f.kind === 'property-failure');
        expect(failures.length).toBeGreaterThan(0);
        expect(asked).toHaveLength(failures.length);
        for (const f of failures) expect(f).toMatchObject({ isNew: false, knownCase: 'planted-known.json' });
        expect(formatSummary(summary).join('\n')).not.toContain('NEW property-failure');
        expect((await loadCorpus(dir)).filter((c) => c.case.kind === 'property-failure')).toHaveLength(0);
      },
      { unsafeCleanup: true },
    );
  });

  it('without a known fault the same failure is new and saved', async () => {
    await withDir(
      async ({ path: dir }) => {
        const summary = await campaign(dir, () => Promise.resolve(undefined));
        const failures = summary.findings.filter((f) => f.kind === 'property-failure');
        expect(failures.length).toBeGreaterThan(0);
        expect(failures.every((f) => f.isNew && f.knownCase === undefined)).toBe(true);
        expect((await loadCorpus(dir)).filter((c) => c.case.kind === 'property-failure')).toHaveLength(failures.length);
      },
      { unsafeCleanup: true },
    );
  });
});

describe('fuzz progress and summary', () => {
  const stats = { elapsedMs: 65_000, runs: 12, sequences: 240, operations: 6500, mutants: 3, newFailures: 1, knownFailures: 2, shrinkAttempts: 0, shrinksStoppedEarly: 0 };

  it('redraws one line on a terminal and prints plain lines elsewhere', () => {
    const tty: string[] = [];
    const onTty = new ProgressPrinter(true, (t) => tty.push(t));
    onTty.onEvent({ kind: 'run', stats });
    onTty.clearLine();
    expect(tty).toEqual([`\r${formatProgress(stats)}\x1b[K`, '\r\x1b[K']);
    const plain: string[] = [];
    const onLog = new ProgressPrinter(false, (t) => plain.push(t));
    onLog.onEvent({ kind: 'run', stats });
    onLog.onEvent({ kind: 'run', stats: { ...stats, elapsedMs: 70_000 } });
    expect(plain).toEqual([`${formatProgress(stats)}\n`]);
    expect(formatProgress(stats)).toBe('fuzz 1m05s  runs 12  sequences 240  ops 6500 (100/s)  mutants 3  failures 1 new, 2 known');
    expect(formatProgress({ ...stats, shrinkAttempts: 40, shrinksStoppedEarly: 1 })).toMatch(/ shrink attempts 40 \(1 stopped early by the time budget\)$/);
  });

  it('prints a plain line every 10 s on a log even when no event comes (a long step or shrink)', () => {
    const plain: string[] = [];
    const onLog = new ProgressPrinter(false, (t) => plain.push(t));
    onLog.tick(20_000); // nothing to show before the first event
    onLog.onEvent({ kind: 'progress', stats: { ...stats, elapsedMs: 1000 } });
    expect(plain).toEqual([]);
    onLog.tick(9_999);
    expect(plain).toEqual([]);
    onLog.tick(10_000);
    onLog.tick(19_999);
    onLog.tick(20_000);
    expect(plain).toEqual([`${formatProgress({ ...stats, elapsedMs: 10_000 })}\n`, `${formatProgress({ ...stats, elapsedMs: 20_000 })}\n`]);
  });

  it('ends with the new failures and their replay commands, and the exit code says so', () => {
    const finding = { kind: 'property-failure' as const, signature: 'structure/structure/write', message: 'x', isNew: true, runSeed: 5, replay: 'qcow2-verify replay c.json' };
    const summary = { stats, findings: [finding], harnessErrors: [] };
    expect(formatSummary(summary).join('\n')).toContain('Replay: qcow2-verify replay c.json');
    const withScript = { ...finding, reproScript: '/tmp/qcow2-verify-repro-c/repro.sh' };
    expect(formatSummary({ ...summary, findings: [withScript] }).join('\n')).toContain('on QEMU: sh /tmp/qcow2-verify-repro-c/repro.sh');
    expect(formatSummary({ ...summary, findings: [{ ...withScript, html: '/tmp/pages/c.html' }] }).join('\n')).toContain('html: /tmp/pages/c.html');
    expect(fuzzExitCode(summary)).toBe(1);
    expect(fuzzExitCode({ ...summary, findings: [{ ...finding, isNew: false }] })).toBe(0);
    expect(fuzzExitCode({ stats, findings: [], harnessErrors: [], cannotRun: 'qemu-img not found' })).toBe(2);
  });
});

describe('fuzz options', () => {
  it('parses budgets, seeds and shards', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    const o = parseFuzzOptions({ runs: '5', seed: '7', shard: '2/4', images: true, corpus: '/tmp/c' }, () => 1);
    expect(o).toMatchObject({ impl: 'ts', budget: { kind: 'runs', count: 5 }, seed: 7, seedGiven: true, shard: { index: 1, count: 4 }, imagesOnly: true, corpusDir: '/tmp/c' });
    expect(parseFuzzOptions({}, () => 99)).toMatchObject({ budget: { kind: 'time', ms: 600_000 }, seed: 99, seedGiven: false });
    expect(parseFuzzOptions({ seed: '7', shard: '4' }, () => 1, { JOB_COMPLETION_INDEX: '3' }).shard).toEqual({ index: 3, count: 4 });
    expect(() => parseFuzzOptions({ seed: '7', shard: '4' }, () => 1, {})).toThrow(/JOB_COMPLETION_INDEX/);
    expect(parseFuzzOptions({}, () => 99).html).toBeUndefined();
    expect(parseFuzzOptions({ html: '/tmp/pages' }, () => 99).html).toBe('/tmp/pages');
    expect(parseFuzzOptions({ runs: '5', shrinkTime: '5m' }, () => 99).shrinkTimeMs).toBe(300_000);
    expect(parseFuzzOptions({ runs: '5' }, () => 99).shrinkTimeMs).toBeUndefined();
    // under a time budget a twentieth of it (10 s at least), so that one property's shrinks cannot hold the whole cycle
    expect(parseFuzzOptions({ time: '10m' }, () => 99).shrinkTimeMs).toBe(30_000);
    expect(parseFuzzOptions({ time: '1m' }, () => 99).shrinkTimeMs).toBe(10_000);
  });

  it('refuses bad options as usage errors (exit 2)', () => {
    for (const raw of [{ time: '1m', runs: '3' }, { runs: '0' }, { time: 'soon' }, { shard: '0/2' }, { impl: 'canary' }, { seed: 'nope' }, { shrinkTime: 'forever' }]) {
      expect(() => parseFuzzOptions(raw, () => 1), JSON.stringify(raw)).toThrow(CliError);
      try {
        parseFuzzOptions(raw, () => 1);
      } catch (error) {
        expect((error as CliError).exitCode).toBe(2);
      }
    }
  });
});
