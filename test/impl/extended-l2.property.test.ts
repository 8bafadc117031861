// Random qemu-io scripts on extended-L2 images (16 KiB and 64 KiB clusters):
// our engine and QEMU 7.2 run the same script and must produce the same image
// up to where host clusters are placed (L2 entries and bitmaps, map flags per
// subcluster, content, a clean check, our reads of QEMU's image). Offsets and
// lengths are drawn at byte, subcluster and cluster grain.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { inTempDir } from '../cli/qemu.js';
import { expectEquivalentImage, runBoth, type Step } from './extended-l2-helpers.js';

/** Scripts for a 16-cluster disk of `cs`-byte clusters. */
function scriptArb(cs: number): fc.Arbitrary<Step[]> {
  const sc = cs / 32;
  const size = 16 * cs;
  const position = fc.oneof(
    fc.integer({ min: 0, max: size - 1 }),
    fc.integer({ min: 0, max: size / sc - 1 }).map((i) => i * sc),
    fc.integer({ min: 0, max: size / cs - 1 }).map((i) => i * cs),
  );
  const span = fc.oneof(fc.integer({ min: 1, max: 3 * cs }), fc.integer({ min: 1, max: 40 }).map((i) => i * sc), fc.integer({ min: 1, max: 3 }).map((i) => i * cs));
  const range = fc.tuple(position, span).map(([offset, length]) => [offset, Math.min(length, size - offset)] as const);
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(range, fc.integer({ min: 1, max: 255 })).map(([[o, n], p]) => `write -P ${p} ${o} ${n}`) },
    { weight: 3, arbitrary: fc.tuple(range, fc.boolean()).map(([[o, n], u]) => `write -z${u ? ' -u' : ''} ${o} ${n}`) },
    { weight: 2, arbitrary: range.map(([o, n]) => `discard ${o} ${n}`) },
    // One cluster at a time: QEMU packs the streams of a longer write in task order.
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: size / cs - 1 }), fc.integer({ min: 1, max: 255 })).map(([c, p]) => `write -c -P ${p} ${c * cs} ${cs}`) },
    { weight: 1, arbitrary: fc.constant({ snapshot: 's' }) },
    // Cluster-aligned: a shrink inside a cluster leaves a stale tail that QEMU 7.2 shows again on growth (docs/semantics.md).
    { weight: 1, arbitrary: fc.integer({ min: 8, max: 16 }).map((c) => `truncate ${c * cs}`) },
  );
  return fc.array(step, { minLength: 1, maxLength: 12 });
}

describe('engine on extended-L2 images: random scripts against QEMU 7.2', () => {
  it.each([16384, 65536])('%i-byte clusters: the same image after every script', async (cs) => {
    await fc.assert(
      fc.asyncProperty(scriptArb(cs), async (steps) => {
        await inTempDir(async (dir) => {
          // A compressed write onto an allocated cluster fails in both.
          const { ours, qemu } = await runBoth(dir, `extended_l2=on,cluster_size=${cs}`, String(16 * cs), steps, true);
          await expectEquivalentImage(ours, qemu, cs / 32);
        });
      }),
      { numRuns: 8 },
    );
  });
});
