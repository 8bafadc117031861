import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mix32, parseShard, runSeed, ShardParseError } from '../../corpus/campaign/seed-stream.js';

describe('seed streams', () => {
  it('gives disjoint seeds to the shards of one campaign', () => {
    const seen = new Map<number, string>();
    for (let index = 0; index < 4; index++) {
      for (let k = 0; k < 2000; k++) {
        const s = runSeed(1234, { index, count: 4 }, k);
        expect(seen.get(s), `seed ${s} from shard ${index} run ${k}`).toBeUndefined();
        seen.set(s, `${index}:${k}`);
      }
    }
  });

  it('is a pure function of (seed, shard, run)', () => {
    expect(runSeed(7, { index: 1, count: 3 }, 5)).toBe(runSeed(7, { index: 1, count: 3 }, 5));
    expect(runSeed(7, { index: 0, count: 1 }, 0)).not.toBe(runSeed(8, { index: 0, count: 1 }, 0));
  });

  it('mixes with a bijection (no two inputs share an output)', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (a, b) => {
        fc.pre(a >>> 0 !== b >>> 0);
        expect(mix32(a)).not.toBe(mix32(b));
      }),
    );
  });

  it('parses shards', () => {
    expect(parseShard('2/5')).toEqual({ index: 1, count: 5 });
    expect(parseShard('5/5')).toEqual({ index: 4, count: 5 });
    expect(() => parseShard('0/5')).toThrow(ShardParseError);
    expect(() => parseShard('6/5')).toThrow(ShardParseError);
    expect(() => parseShard('x/5')).toThrow(/--shard must be I\/N/);
  });

  it('takes I from a Kubernetes Indexed Job\'s JOB_COMPLETION_INDEX (0-based) when only N is given; an explicit I wins', () => {
    expect([0, 1, 2].map((k) => parseShard('3', String(k)))).toEqual([
      { index: 0, count: 3 },
      { index: 1, count: 3 },
      { index: 2, count: 3 },
    ]);
    expect(parseShard('2/3', '0')).toEqual({ index: 1, count: 3 });
    expect(() => parseShard('3')).toThrow('--shard 3 takes shard I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job\'s completion index), which is not set; give --shard I/3');
    expect(() => parseShard('3', '3')).toThrow('JOB_COMPLETION_INDEX="3" is not a completion index of 3 shards (0 … 2)');
    expect(() => parseShard('3', 'one')).toThrow(ShardParseError);
    expect(() => parseShard('0', '0')).toThrow(ShardParseError);
  });
});
