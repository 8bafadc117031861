// Backing chains on disk: the engine opens chains QEMU built and builds chains
// QEMU opens, and every operation on an overlay leaves the same guest view and
// the same qemu-img map as qemu-io/qemu-img doing the same on a copy.
import { describe, expect, it } from 'vitest';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { backingChainDepthMax, Qcow2Error, Qcow2Image, type MapEntry } from '../../impl/index.js';
import { firstDifference, pseudoRandomBytes, qemuCheck, qemuImg, qemuIo, qemuRaw, withTempDir } from './qemu-helpers.js';

const KiB = 1024;

/** qemu-img map --output=json of an image (its chain included). */
async function qemuMap(path: string): Promise<unknown> {
  return JSON.parse(await qemuImg(['map', '--output=json', path])) as unknown;
}

/** The engine's map as qemu-img map --output=json prints it (no File column). */
function jsonMap(entries: readonly MapEntry[]): unknown {
  return entries.map(({ filename: _filename, ...rest }) => rest);
}

async function engineMap(path: string): Promise<unknown> {
  const image = await Qcow2Image.openFile(path, { readOnly: true });
  try {
    return jsonMap(await image.map());
  } finally {
    await image.close();
  }
}

async function engineRead(path: string): Promise<Uint8Array> {
  const image = await Qcow2Image.openFile(path, { readOnly: true });
  try {
    return await image.read(0, image.virtualSize);
  } finally {
    await image.close();
  }
}

/** A qcow2 base with data in clusters 0 and 2 (cluster 1 unallocated), made by QEMU. */
async function qemuBase(path: string, size: string, compat = '1.1'): Promise<void> {
  await qemuImg(['create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, path, size]);
  await qemuIo(path, ['write -P 0xaa 0 64k', 'write -P 0xbb 128k 64k', 'write -P 0xcc 320k 8k']);
}

describe('opening chains QEMU built', () => {
  it('reads through a qcow2 chain of depth 2 and past a shorter backing file, and maps it as qemu-img', async () => {
    await withTempDir(async (d) => {
      await qemuBase(join(d, 'base.qcow2'), '512k');
      await qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(d, 'mid.qcow2'), '768k']);
      await qemuIo(join(d, 'mid.qcow2'), ['write -P 0x11 130k 4k', 'write -z 320k 64k', 'write -P 0x12 600k 4k']);
      await qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', 'mid.qcow2', '-F', 'qcow2', join(d, 'top.qcow2'), '1M']);
      await qemuIo(join(d, 'top.qcow2'), ['write -P 0x22 0 4k', 'write -P 0x23 700k 12k']);
      const top = join(d, 'top.qcow2');
      expect(firstDifference(await engineRead(top), await qemuRaw(top))).toBe(-1);
      expect(await engineMap(top)).toEqual(await qemuMap(top));
    });
  });

  it('reads through a raw backing file (with and without the backing-format extension: QEMU probes)', async () => {
    await withTempDir(async (d) => {
      const raw = join(d, 'base.raw');
      await writeFile(raw, pseudoRandomBytes(200 * KiB, 7));
      await qemuImg(['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', join(d, 'top.qcow2'), '256k']);
      await qemuIo(join(d, 'top.qcow2'), ['write -P 0x22 70k 4k']);
      const top = join(d, 'top.qcow2');
      expect(firstDifference(await engineRead(top), await qemuRaw(top))).toBe(-1);
      expect(await engineMap(top)).toEqual(await qemuMap(top));
      // The same chain without the extension (rebase -u drops it): QEMU 7.2 probes raw.
      const image = await Qcow2Image.openFile(top);
      await image.rebase({ backingFile: 'base.raw', backingFormat: 'raw', unsafe: true });
      await image.close();
      expect((await qemuImg(['info', top]))).toContain('backing file format: raw');
    });
  });
});

describe('overlays the engine writes', () => {
  it('create -b -F takes the backing size, and partial writes copy-on-write from the backing bytes', async () => {
    await withTempDir(async (d) => {
      await qemuBase(join(d, 'base.qcow2'), '512k');
      const top = join(d, 'top.qcow2');
      const image = await Qcow2Image.createFile(top, { backingFile: 'base.qcow2', backingFormat: 'qcow2', clusterSize: 16 * KiB });
      expect(image.virtualSize).toBe(512 * KiB);
      await image.write(130 * KiB, pseudoRandomBytes(3 * KiB, 3));
      await image.write(322 * KiB, pseudoRandomBytes(1000, 4));
      await image.write(60 * KiB, pseudoRandomBytes(10 * KiB, 5));
      await image.close();
      expect((await qemuCheck(top)).exitCode).toBe(0);
      expect(firstDifference(await engineRead(top), await qemuRaw(top))).toBe(-1);
      expect(await engineMap(top)).toEqual(await qemuMap(top));
    });
  });

  for (const compat of ['0.10', '1.1']) {
    it(`write-zeroes, discard and growing resize on a compat=${compat} overlay leave the map qemu-io leaves`, async () => {
      await withTempDir(async (d) => {
        await qemuBase(join(d, 'base.qcow2'), '1M', compat);
        const ours = join(d, 'ours.qcow2');
        const theirs = join(d, 'theirs.qcow2');
        await qemuImg(['create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, '-b', 'base.qcow2', '-F', 'qcow2', ours, '512k']);
        await copyFile(ours, theirs);
        const image = await Qcow2Image.openFile(ours);
        await image.writeZeroes(0, 64 * KiB);
        await image.writeZeroes(70000, 4096);
        await image.discard(128 * KiB, 64 * KiB);
        await image.discard(192 * KiB, 64 * KiB);
        const grow = image.resize(960 * KiB);
        if (compat === '0.10') await expect(grow).rejects.toThrow(/zero out new clusters/);
        else await grow;
        await image.close();
        await qemuIo(theirs, ['write -z 0 64k', 'write -z 70000 4096', 'discard 128k 64k', 'discard 192k 64k']);
        const resize = await execa('qemu-img', ['resize', theirs, '960k'], { reject: false });
        expect(resize.exitCode).toBe(compat === '0.10' ? 1 : 0);
        expect(await engineMap(ours)).toEqual(await qemuMap(theirs));
        expect(firstDifference(await qemuRaw(ours), await qemuRaw(theirs))).toBe(-1);
        expect((await qemuCheck(ours)).exitCode).toBe(0);
      });
    });
  }
});

describe('discard on a version 2 overlay', () => {
  it('changes nothing, as qemu-io 7.2 leaves it (qcow2_co_pdiscard: ENOTSUP with a backing file)', async () => {
    await withTempDir(async (d) => {
      await qemuBase(join(d, 'base.qcow2'), '1M', '0.10');
      const ours = join(d, 'ours.qcow2');
      const theirs = join(d, 'theirs.qcow2');
      await qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'base.qcow2', '-F', 'qcow2', ours, '512k']);
      await copyFile(ours, theirs);
      const image = await Qcow2Image.openFile(ours);
      await image.write(0, new Uint8Array(128 * KiB).fill(0x11));
      await image.discard(0, 192 * KiB);
      expect(await image.read(0, 4)).toEqual(new Uint8Array(4).fill(0x11));
      await image.close();
      await qemuIo(theirs, ['write -P 0x11 0 128k', 'discard 0 192k']);
      expect(await engineMap(ours)).toEqual(await qemuMap(theirs));
      expect(firstDifference(await qemuRaw(ours), await qemuRaw(theirs))).toBe(-1);
    });
  });
});

describe('rebase and commit', () => {
  for (const unsafe of [false, true]) {
    it(`rebase${unsafe ? ' -u' : ''} onto another base and onto none agrees with qemu-img rebase`, async () => {
      await withTempDir(async (d) => {
        await qemuBase(join(d, 'base.qcow2'), '512k');
        await qemuImg(['create', '-q', '-f', 'qcow2', join(d, 'other.qcow2'), '384k']);
        await qemuIo(join(d, 'other.qcow2'), ['write -P 0xaa 0 64k', 'write -P 0x77 130k 1k']);
        const ours = join(d, 'ours.qcow2');
        const theirs = join(d, 'theirs.qcow2');
        await qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', '-b', 'base.qcow2', '-F', 'qcow2', ours, '640k']);
        await qemuIo(ours, ['write -P 0x22 0 4k']);
        await copyFile(ours, theirs);
        const image = await Qcow2Image.openFile(ours);
        await image.rebase({ backingFile: 'other.qcow2', backingFormat: 'qcow2', unsafe });
        await image.close();
        await qemuImg(['rebase', ...(unsafe ? ['-u'] : []), '-b', 'other.qcow2', '-F', 'qcow2', theirs]);
        expect(await engineMap(ours)).toEqual(await qemuMap(theirs));
        expect(firstDifference(await qemuRaw(ours), await qemuRaw(theirs))).toBe(-1);
        const again = await Qcow2Image.openFile(ours);
        await again.rebase({ backingFile: null, unsafe });
        await again.close();
        await qemuImg(['rebase', ...(unsafe ? ['-u'] : []), '-b', '', theirs]);
        expect(await engineMap(ours)).toEqual(await qemuMap(theirs));
        expect(firstDifference(await qemuRaw(ours), await qemuRaw(theirs))).toBe(-1);
        expect(await qemuImg(['info', ours])).not.toContain('backing file');
      });
    });
  }

  for (const compat of ['0.10', '1.1']) {
    it(`commit (compat=${compat}) fills and grows the base and empties the top, as qemu-img commit`, async () => {
      await withTempDir(async (d) => {
        for (const who of ['ours', 'theirs']) {
          await qemuImg(['create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, join(d, `${who}-base.qcow2`), '512k']);
          await qemuIo(join(d, `${who}-base.qcow2`), ['write -P 0xaa 0 512k']);
          await qemuImg(['create', '-q', '-f', 'qcow2', '-o', `compat=${compat}`, '-b', `${who}-base.qcow2`, '-F', 'qcow2', join(d, `${who}.qcow2`), '1M']);
          await qemuIo(join(d, `${who}.qcow2`), ['write -P 0xcc 0 4k', 'write -z 128k 64k', 'write -P 0xdd 640k 64k']);
        }
        const image = await Qcow2Image.openFile(join(d, 'ours.qcow2'));
        await image.commit();
        await image.close();
        await qemuImg(['commit', join(d, 'theirs.qcow2')]);
        expect(await engineMap(join(d, 'ours.qcow2'))).toEqual(await qemuMap(join(d, 'theirs.qcow2')));
        expect(firstDifference(await qemuRaw(join(d, 'ours-base.qcow2')), await qemuRaw(join(d, 'theirs-base.qcow2')))).toBe(-1);
        expect(await engineMap(join(d, 'ours-base.qcow2'))).toEqual(await qemuMap(join(d, 'theirs-base.qcow2')));
        const [ours, theirs] = [await qemuCheck(join(d, 'ours.qcow2')), await qemuCheck(join(d, 'theirs.qcow2'))];
        expect(ours.exitCode).toBe(0);
        // v3: make_completely_empty leaves header, refcount table and block, L1; v2 keeps its L2 tables.
        expect(ours.imageEndOffset).toBe(theirs.imageEndOffset);
        expect((await stat(join(d, 'ours.qcow2'))).size).toBe((await stat(join(d, 'theirs.qcow2'))).size);
        expect((await qemuCheck(join(d, 'ours-base.qcow2'))).exitCode).toBe(0);
        // The emptied image stays usable: a write after the commit lands in it.
        const after = await Qcow2Image.openFile(join(d, 'ours.qcow2'));
        await after.write(0, new Uint8Array(512).fill(7));
        expect((await after.read(0, 1024)).subarray(510, 514)).toEqual(new Uint8Array([7, 7, 0xcc, 0xcc]));
        await after.close();
        expect((await qemuCheck(join(d, 'ours.qcow2'))).exitCode).toBe(0);
      });
    });
  }
});

describe('bad chains get typed errors', () => {
  async function openError(path: string): Promise<Qcow2Error> {
    const error = await Qcow2Image.openFile(path, { readOnly: true }).then(
      async (image) => {
        await image.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Qcow2Error);
    return error as Qcow2Error;
  }

  it('a missing backing file names it; info can still open the image without it', async () => {
    await withTempDir(async (d) => {
      const top = join(d, 'top.qcow2');
      await qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', top, '1M']);
      const error = await openError(top);
      expect(error.code).toBe('io');
      expect(error.message).toContain(join(d, 'gone.qcow2'));
      const image = await Qcow2Image.openFile(top, { readOnly: true, backing: false });
      expect(await image.info()).toMatchObject({ backingFile: 'gone.qcow2', backingFormat: 'qcow2' });
      await image.close();
    });
  });

  it('a loop (A on B on A) and an image on itself are refused, where QEMU 7.2 hangs', async () => {
    await withTempDir(async (d) => {
      await qemuImg(['create', '-q', '-f', 'qcow2', join(d, 'a.qcow2'), '1M']);
      await qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'a.qcow2', '-F', 'qcow2', join(d, 'b.qcow2'), '1M']);
      await qemuImg(['rebase', '-u', '-b', 'b.qcow2', '-F', 'qcow2', join(d, 'a.qcow2')]);
      const error = await openError(join(d, 'a.qcow2'));
      expect(error.code).toBe('corrupt');
      expect(error.message).toMatch(/loop/);
      const image = await Qcow2Image.openFile(join(d, 'b.qcow2'), { readOnly: true, backing: false });
      await expect(image.rebase({ backingFile: 'b.qcow2', backingFormat: 'qcow2', unsafe: true })).rejects.toThrow(/read-only/);
      await image.close();
      await expect(Qcow2Image.createFile(join(d, 'self.qcow2'), { size: 512, backingFile: 'self.qcow2', backingFormat: 'qcow2' })).rejects.toThrow(/its own backing file/);
    });
  });

  it('create without a backing format and rebase without one are refused, as QEMU 7.2 does', async () => {
    await withTempDir(async (d) => {
      await qemuImg(['create', '-q', '-f', 'qcow2', join(d, 'a.qcow2'), '1M']);
      await expect(Qcow2Image.createFile(join(d, 'b.qcow2'), { size: 512, backingFile: 'a.qcow2' })).rejects.toThrow(/without backing format/);
      const image = await Qcow2Image.createFile(join(d, 'c.qcow2'), { size: 512 });
      await expect(image.rebase({ backingFile: 'a.qcow2', unsafe: true })).rejects.toThrow(/backing format must be specified/);
      await image.close();
    });
  });
});

describe('the depth limit', () => {
  it(`a chain of ${backingChainDepthMax} backing files opens; one more is refused with a typed error, never a stack overflow`, async () => {
    await withTempDir(async (d) => {
      // Fixed-width names, so every layer is one template with its backing name patched.
      const base = (i: number) => `l${String(i).padStart(5, '0')}.qcow2`;
      const name = (i: number) => join(d, base(i));
      await (await Qcow2Image.createFile(name(0), { size: 512, clusterSize: 512 })).close();
      await (await Qcow2Image.createFile(name(1), { size: 512, clusterSize: 512, backingFile: base(0), backingFormat: 'qcow2' })).close();
      const template = await readFile(name(1));
      const at = template.indexOf(base(0));
      expect(at).toBeGreaterThan(0);
      for (let i = 2; i <= backingChainDepthMax + 1; i++) {
        const layer = Buffer.from(template);
        layer.write(base(i - 1), at);
        await writeFile(name(i), layer);
      }
      const deepest = await Qcow2Image.openFile(name(backingChainDepthMax), { readOnly: true });
      expect(deepest.backingChain).toHaveLength(backingChainDepthMax);
      expect(await deepest.read(0, 512)).toEqual(new Uint8Array(512));
      await deepest.close();
      const error: unknown = await Qcow2Image.openFile(name(backingChainDepthMax + 1), { readOnly: true }).then(
        async (image) => image.close(),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Qcow2Error);
      expect((error as Qcow2Error).message).toMatch(new RegExp(`deeper than ${backingChainDepthMax}`));
    });
  });
});
