import { describe, expect, it } from 'vitest';
import { TableCache } from '../../../impl/cache/table-cache.js';

describe('TableCache', () => {
  it('evicts the least recently used clean entry and loads on miss', async () => {
    const loads: number[] = [];
    const cache = new TableCache<string>(2, {
      load: async (o) => (loads.push(o), `t${o}`),
      onDirtyEviction: async () => { throw new Error('no dirty entries here'); },
    });
    expect(await cache.get(1)).toBe('t1');
    await cache.get(2);
    await cache.get(1); // 2 is now least recently used
    await cache.get(3);
    expect(cache.has(2)).toBe(false);
    expect(cache.has(1)).toBe(true);
    await cache.get(2);
    expect(loads).toEqual([1, 2, 3, 2]);
  });

  it('prefers clean victims and calls the hook for a dirty one', async () => {
    const written: number[] = [];
    const cache: TableCache<string> = new TableCache<string>(2, {
      load: async (o) => `t${o}`,
      onDirtyEviction: async (o) => { written.push(o); cache.markClean(o); },
    });
    await cache.put(1, 'a');
    await cache.get(2);
    await cache.get(3); // evicts clean 2, keeps dirty 1
    expect(cache.has(1) && !cache.has(2)).toBe(true);
    cache.markDirty(3);
    await cache.get(4); // every entry dirty: the hook writes the LRU one
    expect(written).toEqual([1]);
    expect(cache.dirtyEntries().map(([o]) => o)).toEqual([3]);
  });
});
