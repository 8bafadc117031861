import { describe, expect, it } from 'vitest';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withDir } from 'tmp-promise';
import { knownSignatures, loadCorpus, saveCase, writeFileAtomic } from '../../corpus/store.js';
import type { PropertyFailureCase } from '../../corpus/case/types.js';
import { dedupKey } from '../../corpus/case/identity.js';

const c: PropertyFailureCase = {
  format: 1,
  kind: 'property-failure',
  status: 'open',
  description: 'test case',
  implementation: 'ts',
  property: 'readsAndOutcomes',
  signature: 'readsAndOutcomes/read-mismatch/write',
  message: 'm',
  options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 },
  ops: [{ kind: 'write', offset: 0, length: 512, pattern: 1 }],
  seed: 1,
  path: '0',
  found: { tool: 'qcow2-verify 0.1.0', qemu: '7.2.22', date: '2026-11-25' },
};

describe('corpus store', () => {
  it('saves a case and its image under one content-derived name, once', async () => {
    await withDir(
      async ({ path: dir }) => {
        const first = await saveCase(dir, c, new Uint8Array([1, 2, 3]));
        expect(first.created).toBe(true);
        const again = await saveCase(dir, { ...c, found: { ...c.found, date: '2027-01-01' } });
        expect(again).toEqual({ ...first, created: false });
        // The first finder's file is kept as it was.
        expect(await readFile(first.jsonPath, 'utf8')).toContain('2026-11-25');
        expect((await readdir(dir)).sort()).toEqual([`${first.id}.json`, `${first.id}.qcow2`]);
        const loaded = await loadCorpus(dir);
        expect(loaded).toHaveLength(1);
        expect(loaded[0]!.case).toEqual(c);
        expect(loaded[0]!.imagePath).toBe(join(dir, `${first.id}.qcow2`));
        expect(knownSignatures(loaded).get(dedupKey('ts', c.signature))).toBe('open');
      },
      { unsafeCleanup: true },
    );
  });

  it('ignores leftovers of a killed write and stray images', async () => {
    await withDir(
      async ({ path: dir }) => {
        await writeFile(join(dir, '.x.json.123.0.tmp'), '{"half":');
        await writeFile(join(dir, 'orphan.qcow2'), 'QFI');
        expect(await loadCorpus(dir)).toEqual([]);
        expect(await loadCorpus(join(dir, 'missing'))).toEqual([]);
      },
      { unsafeCleanup: true },
    );
  });

  it('replaces a file atomically and leaves no temp file', async () => {
    await withDir(
      async ({ path: dir }) => {
        const target = join(dir, 'f.json');
        await writeFileAtomic(target, 'old');
        await writeFileAtomic(target, 'new');
        expect(await readFile(target, 'utf8')).toBe('new');
        expect(await readdir(dir)).toEqual(['f.json']);
      },
      { unsafeCleanup: true },
    );
  });

  it('reports a broken case file with its path', async () => {
    await withDir(
      async ({ path: dir }) => {
        await writeFile(join(dir, 'bad.json'), '{ not json');
        await expect(loadCorpus(dir)).rejects.toThrow(/bad\.json: not valid JSON/);
      },
      { unsafeCleanup: true },
    );
  });
});
