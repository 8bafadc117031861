// The space bound and compressed streams: a stream packed after another may
// straddle two host clusters, and when the one before it dies the cluster they
// shared stays (found by gate --impl ts --seed 202, crashConsistency, once that
// property drew compressed writes and ran the space check).
import { describe, expect, it } from 'vitest';
import type { Op } from '../../model/index.js';
import { formatText, replayOps } from '../../properties/index.js';

const options = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: true, virtualSize: 0x600, compressionType: 'zlib' } as const;
const ops: Op[] = [
  { kind: 'writeCompressed', offset: 0, length: 0x400, pattern: 0, seed: 1 },
  { kind: 'write', offset: 0, length: 1, pattern: 0 },
  { kind: 'write', offset: 0x400, length: 0x200, pattern: 0, seed: 1 },
];

describe('space with compressed streams', () => {
  it('a stream that outlives the one packed before it keeps their shared cluster, within the bound', async () => {
    const result = await replayOps({ impl: 'ts', options, ops, properties: ['space'] });
    expect(result.status, formatText(result)).toBe('passed');
  });
});
