// Random qemu-io scripts on extended-L2 images (16 KiB clusters, 512-byte
// subclusters): our engine and QEMU 7.2 run the same script and must produce
// the same image up to where host clusters are placed (L2 entries and bitmaps,
// map flags per subcluster, content, a clean check, our reads of QEMU's image).
// Offsets and lengths are drawn at byte, subcluster and cluster grain.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { inTempDir } from '../cli/qemu.js';
import { expectEquivalentImage, runBoth, type Step } from './extended-l2-helpers.js';

const cs = 16384;
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
);

describe('engine on extended-L2 images: random scripts against QEMU 7.2', () => {
  it('the same image after every script', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        await inTempDir(async (dir) => {
          // A compressed write onto an allocated cluster fails in both.
          const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=16k', String(size), steps, true);
          await expectEquivalentImage(ours, qemu, sc);
        });
      }),
      { numRuns: 12 },
    );
  });
});
