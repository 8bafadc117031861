// The space property is tight: it fails engines that waste space in the two
// ways issue 10 found, with a small budget, and our engine stays within a
// cluster of its bound. Mutants patch the engine's allocator (Refcounts) for
// the duration of one test only; every mutant keeps refcounts exact (qemu-img
// check would find nothing), only the file grows.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Refcounts, type Extent } from '../../impl/refcount.js';
import { formatText, runProperty, type RunResult } from '../../properties/index.js';
import { initialState, step, type ImageOptions, type Op } from '../../model/index.js';
import { createEngineDriver } from '../../properties/drivers/engine.js';
import { spaceCheck, spaceExcessMax } from '../../properties/checks/space.js';
import type { CheckEnv } from '../../properties/checks/check.js';

/** The allocator's private parts a mutant changes (present at run time, private to TypeScript). */
interface AllocatorInternals {
  freeHint: number;
  readonly g: { refblockEntriesCount: number; clusterSize: number };
  findFreeRun(count: number, from: number): Promise<number>;
  freeRunLength(start: number, max: number): Promise<number>;
  isUndurable(cluster: number): boolean;
  cover(start: number, count: number, blockFrom: number): Promise<boolean>;
  taken(from: number, to: number): void;
  allocate(count: number): Promise<number>;
  allocateClusters(count: number): Promise<Extent[]>;
}

const proto = Refcounts.prototype as unknown as AllocatorInternals;

afterEach(() => {
  vi.restoreAllMocks();
});

/** Never hands out a cluster below the highest one it handed out before (in one open). */
function neverReuse(): void {
  const original = proto.findFreeRun;
  const highWater = new WeakMap<object, number>();
  vi.spyOn(proto, 'findFreeRun').mockImplementation(async function (this: AllocatorInternals, count, from) {
    const at = await original.call(this, count, Math.max(from, highWater.get(this) ?? 0));
    highWater.set(this, Math.max(highWater.get(this) ?? 0, at + count));
    return at;
  });
}

/** Reuses a freed cluster only once a flush made its drop durable (the engine before this change). */
function reuseOnlyAfterFlush(): void {
  const findFreeRun = proto.findFreeRun;
  const freeRunLength = proto.freeRunLength;
  vi.spyOn(proto, 'findFreeRun').mockImplementation(async function (this: AllocatorInternals, count, from) {
    for (let at = await findFreeRun.call(this, count, from); ; at = await findFreeRun.call(this, count, at + 1)) {
      let fresh = true;
      for (let c = at; c < at + count; c++) if (this.isUndurable(c)) fresh = false;
      if (fresh) return at;
    }
  });
  vi.spyOn(proto, 'freeRunLength').mockImplementation(async function (this: AllocatorInternals, start, max) {
    const n = await freeRunLength.call(this, start, max);
    for (let c = start; c < start + n; c++) if (this.isUndurable(c)) return c - start;
    return n;
  });
}

/**
 * The allocator before this change: data in contiguous runs of fewer than R
 * clusters, a new refcount block at the start of its range inside the run (the
 * run then goes after it), and the hint past every run, so the free clusters
 * before the block are never found again.
 */
function abandonBeforeNewBlock(): void {
  const cover = proto.cover;
  vi.spyOn(proto, 'cover').mockImplementation(function (this: AllocatorInternals, start, count) {
    const R = this.g.refblockEntriesCount;
    return cover.call(this, start, count, Math.floor((start + count - 1) / R) * R);
  });
  vi.spyOn(proto, 'taken').mockImplementation(function (this: AllocatorInternals, _from, to) {
    this.freeHint = Math.max(this.freeHint, to);
  });
  vi.spyOn(proto, 'allocateClusters').mockImplementation(async function (this: AllocatorInternals, count) {
    const runMax = this.g.refblockEntriesCount - 1;
    const extents: Extent[] = [];
    for (let done = 0; done < count; done += runMax) {
      const n = Math.min(runMax, count - done);
      extents.push([await this.allocate(n), n]);
    }
    return extents;
  });
}

function expectSpaceFailure(result: RunResult): void {
  expect(result.status, formatText(result)).toBe('property-failed');
  if (result.status !== 'property-failed') return;
  expect(result.failure).toMatchObject({ kind: 'violation', check: 'space' });
}

describe('the space property fails wasteful engines with a small budget', () => {
  it('an engine that never reuses a freed cluster', async () => {
    neverReuse();
    expectSpaceFailure(await runProperty({ property: 'space', impl: 'ts', numRuns: 20, seed: 7, shrinkAttemptsMax: 20 }));
  });

  it('an engine that reuses a freed cluster only after a flush', async () => {
    reuseOnlyAfterFlush();
    expectSpaceFailure(await runProperty({ property: 'space', impl: 'ts', numRuns: 60, seed: 7, shrinkAttemptsMax: 20 }));
  });

  it('an engine that abandons the free clusters before a new refcount block', async () => {
    abandonBeforeNewBlock();
    // Small refcount blocks (R = 64 with 512 B clusters and 64-bit counts), so sequences reach new ones.
    const sequence = { image: { versions: [3], clusterBitsMax: 10, refcountBits: [32, 64] } } as const;
    expectSpaceFailure(await runProperty({ property: 'space', impl: 'ts', numRuns: 20, seed: 7, sequence, shrinkAttemptsMax: 20 }));
  });

  it('our engine holds it on the sequences that catch them (properties.test.ts runs it at the suite seed)', async () => {
    expect((await runProperty({ property: 'space', impl: 'ts', numRuns: 10, seed: 7 })).status).toBe('passed');
    const sequence = { image: { versions: [3], clusterBitsMax: 10, refcountBits: [32, 64] } } as const;
    expect((await runProperty({ property: 'space', impl: 'ts', numRuns: 10, seed: 7, sequence })).status).toBe('passed');
  });
});

/** Runs ops on our engine with the space check after each, as the runner does; returns the check's memory. */
async function measure(options: ImageOptions, ops: readonly Op[]): Promise<Map<string, unknown>> {
  const driver = await createEngineDriver(options);
  const scratch = new Map<string, unknown>();
  let state = initialState(options);
  try {
    for (const op of ops) {
      const result = step(state, op);
      expect((await driver.apply(op)).ok).toBe(result.outcome.ok);
      state = result.state;
      const env: CheckEnv = { driver, options, state, scratch, image: () => Promise.reject(new Error('the space check never flushes')) };
      await spaceCheck.afterOp?.(env, op, result.outcome);
    }
  } finally {
    await driver.close();
  }
  return scratch;
}

describe('how tight the bound is on our engine', () => {
  const options = (clusterBits: number, refcountBits: number): ImageOptions => ({
    version: 3, clusterBits, refcountBits, lazyRefcounts: false, virtualSize: 1 << 20,
  });
  const write = (offset: number, length: number): Op => ({ kind: 'write', offset, length, pattern: 0x5a });

  it('write / discard rounds without a flush: the file never passes its peak of live clusters plus refcount structures', async () => {
    for (const clusterBits of [12, 16]) {
      const ops: Op[] = [];
      for (let round = 0; round < 20; round++) ops.push(write(0, 64 * 1024), { kind: 'discard', offset: 0, length: 64 * 1024 });
      expect(spaceExcessMax(await measure(options(clusterBits, 16), ops))).toBe(0);
    }
  });

  it('a whole-disk write needing new refcount blocks: none of the refcount allowance wasted either', async () => {
    const scratch = await measure(options(9, 64), [write(0, 1 << 20), { kind: 'discard', offset: 0, length: 1 << 19 }, write(1 << 19, 1 << 19)]);
    expect(spaceExcessMax(scratch)).toBe(0);
  });
});
