import { describe, expect, it } from 'vitest';
import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
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

  it('merges the corpora of fuzz shards by copying files: one name per case, whoever found it and how', async () => {
    await withDir(
      async ({ path: dir }) => {
        const [shard1, shard2, merged] = ['shard1', 'shard2', 'merged'].map((d) => join(dir, d));
        const other: PropertyFailureCase = { ...c, ops: [{ kind: 'write', offset: 512, length: 512, pattern: 2 }] };
        // shard 2 finds the same case (another seed, date and command) and another one
        const a = await saveCase(shard1!, c, new Uint8Array([1]));
        await saveCase(shard2!, { ...c, seed: 99, path: '3:1', found: { ...c.found, date: '2026-12-01', command: 'qcow2-verify fuzz --shard 2/2' } }, new Uint8Array([1]));
        const b = await saveCase(shard2!, other);
        expect(b.id).not.toBe(a.id);
        // `cp -n shard*/* merged/`: an existing name is the same case, so keeping it loses nothing
        await mkdir(merged!);
        for (const from of [shard1!, shard2!, shard2!]) {
          for (const name of await readdir(from)) {
            await copyFile(join(from, name), join(merged!, name), constants.COPYFILE_EXCL).catch((error: NodeJS.ErrnoException) => {
              if (error.code !== 'EEXIST') throw error;
            });
          }
        }
        const loaded = await loadCorpus(merged!);
        expect(loaded.map((l) => l.id).sort()).toEqual([a.id, b.id].sort());
        expect(loaded.find((l) => l.id === a.id)!.case).toEqual(c);
        expect(loaded.find((l) => l.id === a.id)!.imagePath).toBe(join(merged!, `${a.id}.qcow2`));
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
