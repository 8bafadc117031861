// The crashConsistency property catches the two engine bugs issue 15 names, at
// a fixed seed within a bounded number of runs (never a time budget):
// - an engine that writes its L2 tables before the refcount blocks they depend
//   on (flushMetadata with phases 1 and 2 swapped): a crash between the two
//   leaves an L2 entry to a cluster with refcount 0;
// - an engine that, after an I/O error in a guest write, drops the references
//   of the clusters the write covered though the L2 table still points at them.
// Each mutant is on for one test only. Our engine holds these seeds and runs
// (test/properties/properties.test.ts runs the property at the suite seed; the
// message each test expects is the planted corruption, refcount 0 under a reference).
import { join } from 'node:path';
import { withDir } from 'tmp-promise';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseGateOptions, runGate } from '../../../cli/commands/gate.js';
import type { ImageState } from '../../../impl/state.js';
import { Qcow2Error, Qcow2Image } from '../../../impl/index.js';
import { formatText, replayOps, runProperty, type Step } from '../../../properties/index.js';
import type { ImageOptions } from '../../../model/index.js';

const planted = { l2BeforeRefcounts: false };

vi.mock('../../../impl/flush.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../impl/flush.js')>();
  return {
    ...original,
    async flushMetadata(s: ImageState): Promise<void> {
      // the mutant: L2 tables (with their barrier) before the refcounts they need
      if (planted.l2BeforeRefcounts) await s.map.writeL2Tables();
      await original.flushMetadata(s);
    },
  };
});

afterEach(() => {
  planted.l2BeforeRefcounts = false;
  vi.restoreAllMocks();
});

/** The engine's state behind an image (private to TypeScript, there at run time). */
const stateOf = (image: Qcow2Image) => (image as unknown as { s: ImageState }).s;

function freeReferencedAfterError(): void {
  const write = Qcow2Image.prototype.write;
  vi.spyOn(Qcow2Image.prototype, 'write').mockImplementation(async function (this: Qcow2Image, offset: number, data: Uint8Array) {
    try {
      await write.call(this, offset, data);
    } catch (error) {
      if (!(error instanceof Qcow2Error) || error.code !== 'io') throw error;
      // the mutant "undoes" the failed write by freeing every cluster it covered, allocated or not
      const s = stateOf(this);
      const cs = s.g.clusterSize;
      for (let c = Math.floor(offset / cs); c * cs < offset + data.length; c++) {
        const entry = await s.map.entry(c);
        if ((entry.kind === 'normal' || entry.kind === 'zero-alloc') && entry.copied) await s.map.release(entry);
      }
      throw error;
    }
  });
}

/** The shrunk counterexample, replayed step by step without fast-check, fails the same check (the faults are data). */
async function expectSameFailureOnReplay(options: ImageOptions, steps: readonly Step[], check: string): Promise<void> {
  const replayed = await replayOps({ impl: 'ts', options, ops: steps, properties: ['crashConsistency'] });
  expect(replayed.status, formatText(replayed)).toBe('property-failed');
  if (replayed.status === 'property-failed') expect(replayed.failure).toMatchObject({ kind: 'violation', check });
}

/** A harness hang guard only: the runs are bounded by count, and each takes about a minute on a loaded machine. */
const plantedTimeoutMs = 15 * 60 * 1000;

const runs = { property: 'crashConsistency', seed: 1, numRuns: 100, shrinkAttemptsMax: 50 } as const;

describe('crashConsistency catches planted engine bugs', () => {
  it('L2 tables written before the refcount blocks they depend on', async () => {
    planted.l2BeforeRefcounts = true;
    const result = await runProperty(runs);
    expect(result.status, formatText(result)).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    expect(result.failure).toMatchObject({ kind: 'violation', check: 'crash', message: expect.stringContaining('refcount=0 reference=1') });
    expect(result.counterexample.steps.some((s) => s.kind === 'crash')).toBe(true);
    await expectSameFailureOnReplay(result.counterexample.options, result.counterexample.steps, 'crash');
  }, plantedTimeoutMs);

  it('the gate itself (in this process, by --runs) fails on L2 tables written before their refcount blocks', async () => {
    planted.l2BeforeRefcounts = true;
    await withDir(
      async ({ path }) => {
        const lines: string[] = [];
        // shrinking is bounded (faults inside snapshot ops make each shrink step dearer); the failure is found first, whatever the clock
        const raw = { impl: 'ts', property: 'crashConsistency', runs: '100', seed: '1', workers: '1', shrinkTime: '60s', reproDir: join(path, 'repro') };
        expect(await runGate(parseGateOptions(raw, () => 1), (l) => lines.push(l))).toBe(1);
        expect(lines.join('\n')).toMatch(/Failure: \[crash\].*refcount=0 reference=1/);
      },
      { unsafeCleanup: true },
    );
  }, plantedTimeoutMs);

  it('a cluster still referenced freed after an I/O error', async () => {
    freeReferencedAfterError();
    const result = await runProperty(runs);
    expect(result.status, formatText(result)).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    expect(result.failure).toMatchObject({ kind: 'violation', check: 'io-error', message: expect.stringContaining('refcount=0 reference=1') });
    expect(result.counterexample.steps.some((s) => s.kind === 'ioError')).toBe(true);
    await expectSameFailureOnReplay(result.counterexample.options, result.counterexample.steps, 'io-error');
  }, plantedTimeoutMs);
});
