// The commands on extended-L2 images against qemu-img 7.2: create (its cluster
// size and compat rules, the same file), info and map (text and JSON, map split
// at subclusters), convert to and from extended L2.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCheck } from '../../../cli/commands/check.js';
import { pseudoRandomBytes } from '../../impl/qemu-helpers.js';
import { runCli } from '../run-cli.js';
import { expectClean, inTempDir, qemuImg, qemuImgJson, qemuIo } from '../qemu.js';

/** QEMU-made extended-L2 images: partial, unaligned and zeroed subclusters, snapshots, discards. */
const images: ReadonlyArray<readonly [string, string, readonly string[], readonly string[]]> = [
  ['16 KiB clusters, subcluster writes', 'extended_l2=on,cluster_size=16k', ['write -P 1 0 1k', 'write -P 2 20k 600', 'write -z 40k 2k', 'write -z -u 96k 16k', 'write -P 3 200k 33k'], []],
  ['64 KiB clusters, a snapshot and copy-on-write', 'extended_l2=on', ['write -P 1 0 5k', 'write -P 2 70k 64k'], ['s1']],
  // Whole subclusters only: QEMU writes the zeros of a copy-on-write as a hole
  // (handle_alloc_space), which qemu-img map then reports as "zero" data; the
  // engine writes them, and its map does not look for holes in the file.
  ['2 MiB clusters, 64 KiB subclusters', 'extended_l2=on,cluster_size=2M', ['write -P 1 128k 64k', 'write -z 3M 128k', 'discard 2M 2M'], []],
  ['empty', 'extended_l2=on', [], []],
];

async function makeImage(dir: string, options: string, writes: readonly string[], snapshots: readonly string[], extra: readonly string[] = []): Promise<string> {
  const file = `${dir}/image.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, file, '5M')).exitCode).toBe(0);
  if (writes.length > 0) expect((await qemuIo(file, ...writes)).exitCode).toBe(0);
  for (const name of snapshots) expect((await qemuImg('snapshot', '-c', name, file)).exitCode).toBe(0);
  if (extra.length > 0) expect((await qemuIo(file, ...extra)).exitCode).toBe(0);
  return file;
}

describe('info, map and check on extended-L2 images (end to end against qemu-img)', () => {
  it.each(images)('%s: the same text and JSON as qemu-img', async (_name, options, writes, snapshots) => {
    await inTempDir(async (dir) => {
      const file = await makeImage(dir, options, writes, snapshots, snapshots.length > 0 ? ['write -P 4 2k 1k'] : []);
      for (const command of ['info', 'map']) {
        const json = await runCli([command, '--output=json', file]);
        const qemuJson = (await qemuImg(command, '--output=json', file)).stdout;
        expect(json.stderr).toBe('');
        expect(json.stdout, `${command} --output=json`).toBe(`${qemuJson}\n`);
        const human = await runCli([command, file]);
        expect(human.stdout, `${command} human`).toBe(`${(await qemuImg(command, file)).stdout}\n`);
      }
      expect((await runCli(['info', file])).stdout).toContain('    extended l2: true\n');
      // check: the same human report, and the same JSON members (check-command.test.ts).
      const check = async (output: 'human' | 'json') => {
        const lines: string[] = [];
        expect(runCheck(file, { output, forceShare: false }, (line) => lines.push(line), () => {})).toBe(0);
        return { ours: lines.join('\n'), qemu: (await qemuImg('check', `--output=${output}`, file)).stdout };
      };
      const human = await check('human');
      expect(human.ours, 'check').toBe(human.qemu);
      const json = await check('json');
      expect(JSON.parse(json.ours), 'check --output=json').toEqual(JSON.parse(json.qemu));
    });
  });
});

describe('create -o extended_l2=on (against qemu-img create)', () => {
  it.each(['16k', '64k', '2M'])('cluster size %s: the same Formatting line and the same bytes', async (clusterSize) => {
    await inTempDir(async (dir) => {
      const options = `extended_l2=on,cluster_size=${clusterSize}`;
      const ours = await runCli(['create', '-f', 'qcow2', '-o', options, `${dir}/ours.qcow2`, '3G']);
      const theirs = await qemuImg('create', '-f', 'qcow2', '-o', options, `${dir}/theirs.qcow2`, '3G');
      expect(ours.exitCode).toBe(0);
      expect(ours.stdout.replace('ours', 'theirs')).toBe(`${theirs.stdout}\n`);
      expect(Buffer.compare(await readFile(`${dir}/ours.qcow2`), await readFile(`${dir}/theirs.qcow2`))).toBe(0);
    });
  });

  it.each([
    ['extended_l2=on,cluster_size=8k', 'Extended L2 entries are only supported with cluster sizes of at least 16384 bytes'],
    ['extended_l2=on,compat=0.10', 'Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)'],
  ])('%s: refused with qemu-img\'s words and exit 1, after the Formatting line, creating nothing', async (options, words) => {
    await inTempDir(async (dir) => {
      const ours = await runCli(['create', '-o', options, `${dir}/x.qcow2`, '1M']);
      const theirs = await qemuImg('create', '-f', 'qcow2', '-o', options, `${dir}/y.qcow2`, '1M');
      expect(theirs.exitCode).toBe(1);
      expect(theirs.stderr).toContain(words);
      expect(ours.exitCode).toBe(1);
      expect(ours.stdout.replace('x.qcow2', 'y.qcow2')).toBe(`${theirs.stdout}\n`);
      expect(ours.stderr).toContain(words);
      await expect(stat(`${dir}/x.qcow2`)).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });
});

describe('convert to and from extended L2 (against qemu-img convert)', () => {
  it('raw → qcow2 -o extended_l2=on: the same image as qemu-img convert makes', async () => {
    await inTempDir(async (dir) => {
      const raw = `${dir}/a.raw`;
      const data = new Uint8Array(3 << 20);
      data.set(pseudoRandomBytes(300_000, 7), 100_000);
      data.set(pseudoRandomBytes(5, 9), (3 << 20) - 5);
      await writeFile(raw, data);
      for (const options of ['extended_l2=on', 'extended_l2=on,cluster_size=16k']) {
        expect((await runCli(['convert', '-O', 'qcow2', '-o', options, raw, `${dir}/ours.qcow2`])).exitCode).toBe(0);
        expect((await qemuImg('convert', '-f', 'raw', '-O', 'qcow2', '-o', options, raw, `${dir}/theirs.qcow2`)).exitCode).toBe(0);
        await expectClean(`${dir}/ours.qcow2`);
        expect((await qemuImg('compare', '-f', 'raw', '-F', 'qcow2', raw, `${dir}/ours.qcow2`)).exitCode).toBe(0);
        expect(await qemuImgJson('map', `${dir}/ours.qcow2`), options).toEqual(await qemuImgJson('map', `${dir}/theirs.qcow2`));
        expect(((await qemuImgJson('info', `${dir}/ours.qcow2`)) as Record<string, unknown>)['format-specific']).toMatchObject({ data: { 'extended-l2': true } });
      }
    });
  });

  it('extended-L2 qcow2 → raw and → standard qcow2: identical content, clean', async () => {
    await inTempDir(async (dir) => {
      const image = await makeImage(dir, 'extended_l2=on,cluster_size=16k', ['write -P 1 0 1k', 'write -P 2 20k 600', 'write -z 40k 2k', 'write -c -P 3 64k 16k'], []);
      expect((await runCli(['convert', '-O', 'raw', image, `${dir}/b.raw`])).exitCode).toBe(0);
      expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'raw', image, `${dir}/b.raw`)).stdout).toBe('Images are identical.');
      expect((await runCli(['convert', '-O', 'qcow2', image, `${dir}/std.qcow2`])).exitCode).toBe(0);
      await expectClean(`${dir}/std.qcow2`);
      expect((await qemuImg('compare', image, `${dir}/std.qcow2`)).stdout).toBe('Images are identical.');
      expect(((await qemuImgJson('info', `${dir}/std.qcow2`)) as Record<string, unknown>)['format-specific']).toMatchObject({ data: { 'extended-l2': false } });
    });
  });
});
