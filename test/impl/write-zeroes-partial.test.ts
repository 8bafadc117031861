// A partial write-zeroes into a cluster that already reads as zeros zeroizes it
// whole (docs/semantics.md), for every zero-reading kind, including zero-alloc:
// the cluster must stay zero-alloc, not become a normal cluster of zeros.
// Written against a surviving mutant of impl/zero-discard.ts (docs/mutation.md).
import { describe, it } from 'vitest';
import { runAgainstModel } from './model-agreement.js';
import type { ImageOptions } from '../../model/index.js';

const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 };

describe('partial write-zeroes into zero-reading clusters', () => {
  it('zero-alloc, zero-plain and unallocated clusters stay what the model says', async () => {
    await runAgainstModel(v3, [
      { kind: 'write', offset: 0, length: 3 * 4096, pattern: 5 },
      { kind: 'writeZeroes', offset: 0, length: 4096, unmap: false }, // zero-alloc
      { kind: 'writeZeroes', offset: 4096, length: 4096, unmap: true }, // zero-plain
      { kind: 'writeZeroes', offset: 100, length: 200, unmap: false },
      { kind: 'writeZeroes', offset: 4096 + 100, length: 200, unmap: false },
      { kind: 'writeZeroes', offset: 5 * 4096 + 100, length: 200, unmap: true }, // unallocated
      { kind: 'writeZeroes', offset: 2 * 4096 + 100, length: 200, unmap: false }, // normal: zeros written
    ]);
  });
});
