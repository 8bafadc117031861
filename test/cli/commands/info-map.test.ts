import { open } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { mergeMap } from '../../../cli/commands/map.js';
import { formatQemuJson, infoJson, infoText } from '../../../cli/commands/info.js';
import type { ImageInfo } from '../../../impl/index.js';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

/** Images QEMU made: data, zero clusters (alloc and plain), discards, holes, snapshots. */
const images: ReadonlyArray<readonly [string, string, readonly string[], readonly string[]]> = [
  ['v3, 64 KiB clusters, snapshots', 'compat=1.1', ['write -P 1 0 128k', 'write -z 1M 64k', 'write -z 2M 4k', 'write -P 2 3M 64k', 'discard 0 64k'], ['s1', 'second snapshot']],
  ['v2, 4 KiB clusters', 'compat=0.10,cluster_size=4k', ['write -P 1 0 20k', 'write -z 8k 4k', 'write -P 3 100k 4k'], []],
  ['v3, lazy refcounts, 1-bit refcounts, 512-byte clusters', 'lazy_refcounts=on,refcount_bits=1,cluster_size=512', ['write -P 1 1000 3000', 'write -z -u 0 512'], []],
  ['v3, empty', 'compat=1.1', [], []],
];

async function makeImage(dir: string, options: string, writes: readonly string[], snapshots: readonly string[]): Promise<string> {
  const file = `${dir}/image.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, file, '5M')).exitCode).toBe(0);
  if (writes.length > 0) expect((await qemuIo(file, ...writes)).exitCode).toBe(0);
  for (const name of snapshots) expect((await qemuImg('snapshot', '-c', name, file)).exitCode).toBe(0);
  return file;
}

describe('info and map (end to end against qemu-img)', () => {
  it.each(images)('%s: info and map print what qemu-img prints, JSON and human', async (_name, options, writes, snapshots) => {
    await inTempDir(async (dir) => {
      const file = await makeImage(dir, options, writes, snapshots);
      for (const command of ['info', 'map']) {
        const json = await runCli([command, '--output=json', file]);
        const qemuJson = (await qemuImg(command, '--output=json', file)).stdout;
        expect(json.stderr).toBe('');
        expect(json.exitCode).toBe(0);
        expect(JSON.parse(json.stdout), `${command} --output=json`).toEqual(JSON.parse(qemuJson));
        expect(json.stdout, `${command} --output=json text`).toBe(`${qemuJson}\n`);
        const human = await runCli([command, file]);
        expect(human.stdout, `${command} human`).toBe(`${(await qemuImg(command, file)).stdout}\n`);
      }
    });
  });

  it('compressed clusters: JSON map as qemu-img, human map refused like qemu-img', async () => {
    await inTempDir(async (dir) => {
      const plain = await makeImage(dir, 'compat=1.1', ['write -P 7 0 1M', 'write -P 9 3M 100k'], []);
      const file = `${dir}/compressed.qcow2`;
      expect((await qemuImg('convert', '-c', '-O', 'qcow2', plain, file)).exitCode).toBe(0);
      const json = await runCli(['map', '--output=json', file]);
      expect(json.stdout).toBe(`${(await qemuImg('map', '--output=json', file)).stdout}\n`);
      expect(JSON.parse(json.stdout)[0]).toEqual({ start: 0, length: 1 << 20, depth: 0, present: true, zero: false, data: true });
      const human = await runCli(['map', file]);
      expect(human.exitCode).toBe(1);
      expect(human.stderr).toMatch(/^qcow2-verify: map: File contains external, encrypted or compressed clusters.*\n$/);
      // qemu-img prints the lines before the first compressed range, then refuses
      const mixed = `${dir}/mixed.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', mixed, '1M');
      await qemuIo(mixed, 'write -P 1 0 64k', 'write -c -P 2 128k 64k', 'write -P 3 256k 64k');
      const qemuMixed = await qemuImg('map', mixed);
      const ours = await runCli(['map', mixed]);
      expect(qemuMixed.stdout.split('\n')).toHaveLength(2);
      expect(ours.stdout).toBe(`${qemuMixed.stdout}\n`);
      expect([ours.exitCode, qemuMixed.exitCode]).toEqual([1, 1]);
    });
  });

  it('after our own write the file may end inside its last cluster: map says what qemu-img map says', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/tail.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=65536', file, '8M');
      await qemuIo(file, 'write -P 1 0 64k');
      const w = await runCli(['io', file, '-c', 'write -P 2 64k 4k']);
      expect(w.exitCode).toBe(0);
      for (const output of ['--output=json', '--output=human']) {
        const ours = await runCli(['map', output, file]);
        expect(ours.stdout, output).toBe(`${(await qemuImg('map', output, file)).stdout}\n`);
      }
      // the unwritten part of the new cluster lies past the end of the file: data that reads as zeros
      expect((await runCli(['map', '--output=json', file])).stdout).toContain('"zero": true, "data": true');
    });
  });

  it('a dirty lazy-refcounts image shows the dirty flag as qemu-img does', async () => {
    await inTempDir(async (dir) => {
      const file = await makeImage(dir, 'lazy_refcounts=on', ['write -P 1 0 64k'], []);
      const handle = await open(file, 'r+');
      await handle.write(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 1]), 0, 8, 72); // incompatible_features: dirty
      await handle.close();
      const human = await runCli(['info', file]);
      expect(human.stdout).toBe(`${(await qemuImg('info', file)).stdout}\n`);
      expect(human.stdout).toContain('cleanly shut down: no\n');
      const json = await runCli(['info', '--output=json', file]);
      expect(JSON.parse(json.stdout)['dirty-flag']).toBe(true);
      expect(json.stdout).toBe(`${(await qemuImg('info', '--output=json', file)).stdout}\n`);
    });
  });

  it('damage met while mapping is one line naming it, as qemu-img map fails with "Could not read file metadata"', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/sc.qcow2`;
      expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', file, '1M')).exitCode).toBe(0);
      expect((await qemuIo(file, 'write -P 1 0 1k')).exitCode).toBe(0);
      const handle = await open(file, 'r+');
      try {
        // subcluster 0 also marked zero (bit 32 of the bitmap word after the first L2 entry)
        const word = Buffer.alloc(8);
        await handle.read(word, 0, 8, 40);
        const l1 = Number(word.readBigUInt64BE());
        await handle.read(word, 0, 8, l1);
        const l2 = Number(word.readBigUInt64BE() & 0x00ff_ffff_ffff_fe00n);
        await handle.read(word, 0, 8, l2 + 8);
        word.writeBigUInt64BE(word.readBigUInt64BE() | (1n << 32n));
        await handle.write(word, 0, 8, l2 + 8);
      } finally {
        await handle.close();
      }
      expect((await qemuImg('map', '--output=json', file)).stderr).toContain('Could not read file metadata');
      for (const output of ['--output=json', '--output=human']) {
        const ours = await runCli(['map', output, file]);
        expect(ours.exitCode, output).toBe(1);
        expect(ours.stderr, output).toMatch(/^qcow2-verify: map: could not read file metadata: L2 table at \d+ entry 0: subcluster both allocated and zero .*\(corrupt\)\n$/);
      }
    });
  });

  it('a missing file is named with the words qemu-img uses', async () => {
    await inTempDir(async (dir) => {
      const gone = `${dir}/gone.qcow2`;
      for (const command of ['info', 'map']) {
        const ours = await runCli([command, gone]);
        expect(ours.exitCode, command).toBe(1);
        expect(ours.stderr, command).toBe(`qcow2-verify: could not open '${gone}': Could not open '${gone}': No such file or directory\n`);
        expect((await qemuImg(command, gone)).stderr, command).toContain(`Could not open '${gone}': Could not open '${gone}': No such file or directory`);
      }
    });
  });

  it('refuses an unknown --output with a usage error', async () => {
    await inTempDir(async (dir) => {
      const file = await makeImage(dir, 'compat=1.1', [], []);
      const r = await runCli(['info', '--output=xml', file]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toBe("qcow2-verify: --output 'xml': expected human or json\n");
    });
  });
});

describe('mergeMap', () => {
  it("merges like qemu-img's entry_mergeable: same flags and contiguous host offsets", () => {
    const base = { depth: 0, present: true, zero: false, data: true };
    expect(
      mergeMap([
        { ...base, start: 0, length: 4096, offset: 8192 },
        { ...base, start: 4096, length: 4096, offset: 12288 },
        { ...base, start: 8192, length: 4096, offset: 40960 },
        { ...base, start: 12288, length: 4096, present: false, zero: true, data: false },
        { ...base, start: 16384, length: 4096, present: false, zero: true, data: false },
      ]),
    ).toEqual([
      { ...base, start: 0, length: 8192, offset: 8192 },
      { ...base, start: 8192, length: 4096, offset: 40960 },
      { ...base, start: 12288, length: 8192, present: false, zero: true, data: false },
    ]);
  });
});

describe('formatQemuJson', () => {
  it('prints qemu-style JSON, bigints as integers', () => {
    expect(formatQemuJson({ a: [{ b: 1n << 63n }], c: 'x', d: false, e: [] })).toBe(
      '{\n    "a": [\n        {\n            "b": 9223372036854775808\n        }\n    ],\n    "c": "x",\n    "d": false,\n    "e": [\n    ]\n}',
    );
  });
});

describe('info with a backing file (the engine refuses to open such images for now)', () => {
  // Expected text copied from qemu-img 7.2 info on /tmp/qx/bk.qcow2 (backing s.qcow2, format qcow2).
  const info: ImageInfo = {
    virtualSize: 1 << 20, clusterSize: 65536, version: 3, refcountBits: 16, lazyRefcounts: false, compressionType: 'zlib', dirty: false,
    corrupt: false, fileLength: 196616, snapshots: [], bitmaps: [], backingFile: 's.qcow2', backingFormat: 'qcow2',
  };

  it('prints the backing members where qemu-img does', () => {
    const json = infoJson(info, '/tmp/qx/bk.qcow2', 200704);
    expect(Object.keys(json)).toEqual([
      'backing-filename-format', 'virtual-size', 'filename', 'cluster-size', 'format', 'actual-size', 'format-specific',
      'full-backing-filename', 'backing-filename', 'dirty-flag',
    ]);
    expect(json['full-backing-filename']).toBe('/tmp/qx/s.qcow2');
    expect(infoText(info, '/tmp/qx/bk.qcow2', 200704).slice(5, 7)).toEqual([
      'backing file: s.qcow2 (actual path: /tmp/qx/s.qcow2)',
      'backing file format: qcow2',
    ]);
    expect(infoText(info, 'bk.qcow2', 200704)[5]).toBe('backing file: s.qcow2');
  });

  it('an overlay with a snapshot: the backing format comes before the snapshots, as in qemu-img info --output=json', async () => {
    await inTempDir(async (dir) => {
      const [base, top] = [`${dir}/base.qcow2`, `${dir}/top.qcow2`];
      expect((await qemuImg('create', '-q', '-f', 'qcow2', base, '1M')).exitCode).toBe(0);
      expect((await qemuImg('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top)).exitCode).toBe(0);
      expect((await qemuImg('snapshot', '-c', 's1', top)).exitCode).toBe(0);
      const theirs = (await qemuImg('info', '--output=json', top)).stdout;
      expect(Object.keys(JSON.parse(theirs)).slice(0, 2)).toEqual(['backing-filename-format', 'snapshots']);
      expect((await runCli(['info', '--output=json', top])).stdout).toBe(`${theirs}\n`);
    });
  });
});
