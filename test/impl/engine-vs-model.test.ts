import { describe, it } from 'vitest';
import { runAgainstModel } from './model-agreement.js';
import type { ImageOptions, Op } from '../../model/index.js';

const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 };

describe('engine agrees with the model on hand-picked sequences', () => {
  it('writes, zero writes, discards', async () => {
    const ops: Op[] = [
      { kind: 'write', offset: 1000, length: 10000, pattern: 0, seed: 7 },
      { kind: 'writeZeroes', offset: 0, length: 4096, unmap: false },
      { kind: 'writeZeroes', offset: 4096, length: 8192, unmap: true },
      { kind: 'write', offset: 500, length: 100, pattern: 0xab },
      { kind: 'discard', offset: 0, length: 20000 },
      { kind: 'write', offset: (1 << 20) - 10, length: 10, pattern: 1 },
      { kind: 'write', offset: (1 << 20) - 10, length: 11, pattern: 1 },
      { kind: 'reopen' },
      { kind: 'writeZeroes', offset: 100, length: 200, unmap: false },
    ];
    await runAgainstModel(v3, ops);
  });

  it('snapshots and resize', async () => {
    const ops: Op[] = [
      { kind: 'write', offset: 0, length: 20000, pattern: 0, seed: 3 },
      { kind: 'snapshotCreate', name: 'a' },
      { kind: 'write', offset: 4096, length: 100, pattern: 9 },
      { kind: 'writeZeroes', offset: 8192, length: 4096, unmap: false },
      { kind: 'snapshotCreate', name: 'b' },
      { kind: 'resize', size: 3 * 512 },
      { kind: 'resize', size: 2 << 20 },
      { kind: 'write', offset: (2 << 20) - 4096, length: 4096, pattern: 5 },
      { kind: 'snapshotRevert', name: 'a' },
      { kind: 'snapshotDelete', name: 'a' },
      { kind: 'snapshotRevert', name: 'nope' },
      { kind: 'snapshotRevert', name: 'b' },
      { kind: 'reopen' },
      { kind: 'snapshotDelete', name: 'b' },
    ];
    await runAgainstModel(v3, ops);
    await runAgainstModel({ ...v3, version: 2 }, ops);
    await runAgainstModel({ ...v3, refcountBits: 2, clusterBits: 9 }, ops);
  });
});
