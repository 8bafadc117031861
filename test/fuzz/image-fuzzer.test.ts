// The malformed-image fuzzer in npm test: the watchdog turns a hang and a heap
// blow-up into findings, and a small fixed-seed campaign (30 mutants, no
// shrinking) finds nothing that corpus/cases does not already track — a new
// disagreement, crash or hang at this seed fails here with its replay command.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { withDir } from 'tmp-promise';
import { runCampaign } from '../../corpus/campaign/campaign.js';
import { buildBaseImage } from '../../corpus/mutants/base-image.js';
import { expectedDifferences } from '../../corpus/mutants/judge.js';
import { VerdictWatchdog } from '../../corpus/mutants/watchdog.js';
import { defaultCorpusDir } from '../../corpus/store.js';

/** The fixed campaign seed of npm test; `qcow2-verify fuzz --images --seed 20261125 --runs 30` reproduces it (with shrinking). */
const imageFuzzTestSeed = 20261125;
const mutantsCount = 30;

/** The watchdog's timeout in these tests; only a fake clock ever reaches it. */
const timeoutMs = 1500;
const watchdog = new VerdictWatchdog({ timeoutMs, heapMb: 64 });
/** For the heap test: a timeout no loaded machine reaches first (a day), so only the heap limit can end the request. */
const heapWatchdog = new VerdictWatchdog({ timeoutMs: 24 * 3600 * 1000, heapMb: 64 });
afterAll(async () => {
  vi.useRealTimers();
  await watchdog.close();
  await heapWatchdog.close();
});

/** The phase the pending request reported last (private: the watchdog reports it only with a result). */
function pendingPhase(w: VerdictWatchdog): string | undefined {
  return (w as unknown as { pending?: { phase: string } }).pending?.phase;
}

// No assertion here depends on the machine's speed (issue 11.8): the watchdog's
// clock is fake, so its timeout fires exactly when the test advances it, and
// never while a slow worker is still loading or evaluating.
describe('watchdog', () => {
  it('reports a runaway verdict as a hang and recovers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const spinning = watchdog.selfTest('spin');
      // real time passes (node:timers/promises is not faked) until the worker says it spins
      while (pendingPhase(watchdog) !== 'spin') await sleep(10);
      vi.advanceTimersByTime(timeoutMs - 1);
      expect(pendingPhase(watchdog)).toBe('spin');
      vi.advanceTimersByTime(1);
      expect(await spinning).toEqual({ kind: 'hang', phase: 'spin', timeoutMs });
      // the replacement worker answers however long it takes: its timer never fires without the test
      const base = await buildBaseImage({ options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 }, ops: [] });
      const after = await watchdog.evaluate(base);
      expect(after.kind).toBe('verdict');
      if (after.kind === 'verdict') {
        expect(after.verdict.open.ok).toBe(true);
        expect(after.verdict.check).toMatchObject({ ok: true, verdict: 'clean' });
      }
    } finally {
      vi.useRealTimers();
    }
  });

  it('reports a heap blow-up as a memory finding', async () => {
    // Its own watchdog with a timeout a 64 MiB heap cannot miss: on a loaded
    // machine, starting a worker and filling its heap took longer than 1.5 s,
    // and the blow-up was reported as a hang.
    const result = await heapWatchdog.selfTest('allocate');
    expect(result).toMatchObject({ kind: 'memory', phase: 'allocate' });
  });
});

describe('malformed-image fuzzer', () => {
  it('base images without snapshots rebuild byte for byte (so large ones need not be stored)', async () => {
    const spec = { options: { version: 2 as const, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 }, ops: [{ kind: 'write' as const, offset: 4096, length: 8192, pattern: 7 }] };
    expect(await buildBaseImage(spec)).toEqual(await buildBaseImage(spec));
  });

  it(`finds nothing new in ${mutantsCount} mutants at seed ${imageFuzzTestSeed}`, async () => {
    await withDir(
      async ({ path: dir }) => {
        const summary = await runCampaign({
          impl: 'ts',
          seed: imageFuzzTestSeed,
          shard: { index: 0, count: 1 },
          budget: { kind: 'runs', count: mutantsCount },
          kinds: 'images',
          corpusDir: dir,
          knownDirs: [defaultCorpusDir()],
          shrinkImages: false,
          now: () => 0,
        });
        expect(summary.stats.mutants).toBe(mutantsCount);
        const fresh = summary.findings.filter((f) => f.isNew).map((f) => `${f.signature}: ${f.message} (seed ${f.runSeed})`);
        expect(fresh, 'new findings: triage them and add them to corpus/cases (qcow2-verify fuzz --images --corpus corpus/cases)').toEqual([]);
      },
      { unsafeCleanup: true },
    );
  });

  it('documents every expected difference with a reason', () => {
    for (const d of expectedDifferences) {
      expect(d.description.length).toBeGreaterThan(40);
      expect(d.open !== undefined || d.check !== undefined).toBe(true);
    }
  });
});
