// Random op sequences: the engine must agree with the model after every op
// (outcomes, reads, structure up to host offsets, clean check), across versions,
// cluster sizes, refcount widths and lazy refcounts.
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { runAgainstModel } from './model-agreement.js';
import type { ImageOptions, Op } from '../../model/index.js';

const optionsArb: fc.Arbitrary<ImageOptions> = fc
  .record({
    version: fc.constantFrom<2 | 3>(2, 3),
    clusterBits: fc.constantFrom(9, 9, 10, 12, 16),
    refcountBits: fc.constantFrom(1, 2, 4, 8, 16, 32, 64),
    lazyRefcounts: fc.boolean(),
    sectors: fc.integer({ min: 1, max: 600 }),
  })
  .map(({ version, clusterBits, refcountBits, lazyRefcounts, sectors }) => ({
    version,
    clusterBits,
    refcountBits: version === 2 ? 16 : refcountBits,
    lazyRefcounts: version === 3 && lazyRefcounts,
    virtualSize: sectors * 512,
  }));

function opArb(size: number, cs: number): fc.Arbitrary<Op> {
  // Offsets biased to cluster boundaries and the disk end; lengths up to a few clusters.
  const offset = fc.oneof(
    fc.integer({ min: 0, max: size }),
    fc.integer({ min: 0, max: Math.floor(size / cs) }).map((c) => c * cs),
    fc.constant(Math.max(0, size - cs)),
  );
  const range = fc.tuple(offset, fc.integer({ min: 1, max: 4 * cs })).map(([o, l]) => ({ offset: Math.min(o, size), length: l }));
  const name = fc.constantFrom('s1', 's2', 's3', '1');
  return fc.oneof(
    { weight: 6, arbitrary: range.chain((r) => fc.record({ kind: fc.constant('write' as const), offset: fc.constant(r.offset), length: fc.constant(r.length), pattern: fc.integer({ min: 0, max: 255 }), seed: fc.integer() })) },
    { weight: 2, arbitrary: range.chain((r) => fc.record({ kind: fc.constant('writeZeroes' as const), offset: fc.constant(r.offset), length: fc.constant(r.length), unmap: fc.boolean() })) },
    { weight: 2, arbitrary: range.map((r) => ({ kind: 'discard' as const, ...r })) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * Math.ceil(size / 512) }).map((n) => ({ kind: 'resize' as const, size: n * 512 })) },
    { weight: 2, arbitrary: name.map((n) => ({ kind: 'snapshotCreate' as const, name: n })) },
    { weight: 1, arbitrary: name.map((n) => ({ kind: 'snapshotRevert' as const, name: n })) },
    { weight: 1, arbitrary: name.map((n) => ({ kind: 'snapshotDelete' as const, name: n })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  );
}

// Default caches, or two-entry caches so that dirty tables are evicted mid-operation.
const cachesArb = fc.constantFrom({}, { l2CacheEntries: 2, refcountCacheEntries: 2 }, { l2CacheEntries: 3 });

const caseArb = optionsArb.chain((options) =>
  fc.tuple(fc.constant(options), fc.array(opArb(options.virtualSize, 2 ** options.clusterBits), { minLength: 1, maxLength: 14 }), cachesArb),
);

describe('engine vs model (random sequences)', () => {
  it('agrees after every op', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async ([options, ops, caches]) => {
        await runAgainstModel(options, ops, caches);
      }),
      { numRuns: 80 },
    );
  });
});
