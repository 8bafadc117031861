// Persistent dirty bitmaps through the CLI, against qemu-img 7.2 on images QEMU
// made: read-write opens are refused and leave the file untouched, read-only
// commands work and print what qemu-img prints, --drop-bitmaps loses them the way
// the spec allows, and snapshot -a refuses as qemu-img does.
import { open, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCheck } from '../../../cli/commands/check.js';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

/** qemu-img create, bitmaps bm0 (enabled) and bm1 (512 KiB granularity, disabled), one write each marks. */
async function imageWithBitmaps(dir: string, options = 'compat=1.1'): Promise<string> {
  const file = `${dir}/b.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, file, '64M')).exitCode).toBe(0);
  expect((await qemuImg('bitmap', '--add', file, 'bm0')).exitCode).toBe(0);
  expect((await qemuImg('bitmap', '--add', '-g', '512k', file, 'bm1')).exitCode).toBe(0);
  expect((await qemuIo(file, 'write -P 0xaa 0 1M')).exitCode).toBe(0);
  expect((await qemuImg('bitmap', '--disable', file, 'bm1')).exitCode).toBe(0);
  return file;
}

/** `qcow2-verify check` in-process (it writes to process.stdout, so not through runCli). */
function ourCheck(file: string, output: 'human' | 'json'): { exitCode: number; stdout: string; stderr: string } {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = runCheck(file, { output, forceShare: false }, (l) => out.push(l), (l) => err.push(l));
  return { exitCode, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Sets the in_use flag of the first directory entry, as a crash of QEMU leaves it. */
async function markFirstInUse(file: string): Promise<void> {
  const info = JSON.parse((await qemuImg('info', '--output=json', file)).stdout) as { 'format-specific': { data: { bitmaps: unknown[] } } };
  expect(info['format-specific'].data.bitmaps).toHaveLength(2);
  const bytes = await readFile(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  let at = view.getUint32(100); // header_length: the extensions follow
  while (view.getUint32(at) !== 0x23852875) at += 8 + Math.ceil(view.getUint32(at + 4) / 8) * 8;
  const directory = Number(view.getBigUint64(at + 8 + 16));
  const handle = await open(file, 'r+');
  await handle.write(new Uint8Array([0, 0, 0, view.getUint32(directory + 12) | 1]), 0, 4, directory + 12);
  await handle.close();
}

describe('persistent bitmaps (end to end against qemu-img)', () => {
  it('io refuses a read-write open, names the bitmaps, changes no byte; qemu-img check stays clean', async () => {
    await inTempDir(async (dir) => {
      const file = await imageWithBitmaps(dir);
      const before = await readFile(file);
      const run = await runCli(['io', file, '-c', 'read 0 4k']);
      expect(run.exitCode).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/could not open '.*b\.qcow2' for writing: the image has persistent dirty bitmaps \('bm0', 'bm1'\)/);
      expect(run.stderr).toContain('--drop-bitmaps');
      expect((await readFile(file)).equals(before)).toBe(true);
      const check = await qemuImg('check', file);
      expect(check.exitCode).toBe(0);
      expect(check.stderr).toBe('');
      expect((await runCli(['snapshot', '-c', 's1', file])).exitCode).toBe(1);
      expect((await readFile(file)).equals(before)).toBe(true);
    });
  });

  it('read-only commands work and agree with qemu-img: check, info (text and JSON), map, io -r, convert', async () => {
    await inTempDir(async (dir) => {
      const file = await imageWithBitmaps(dir);
      await markFirstInUse(file);
      for (const output of ['json', 'human'] as const) {
        const ours = ourCheck(file, output);
        const theirs = await qemuImg('check', `--output=${output}`, file);
        expect(ours.exitCode).toBe(0);
        expect(theirs.exitCode).toBe(0);
        if (output === 'json') expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(theirs.stdout));
        else expect(ours.stdout).toBe(theirs.stdout);
      }
      for (const command of ['info', 'map']) {
        const ours = await runCli([command, '--output=json', file]);
        const theirs = await qemuImg(command, '--output=json', file);
        expect(ours.exitCode, command).toBe(theirs.exitCode);
        expect(ours.stdout, `${command} --output=json`).toBe(`${theirs.stdout}\n`);
        const human = await runCli([command, file]);
        expect(human.stdout, `${command} human`).toBe(`${(await qemuImg(command, file)).stdout}\n`);
      }
      // What qemu-img 7.2 prints for these bitmaps: in-use before auto, a disabled bitmap has no flags.
      expect((await runCli(['info', file])).stdout).toContain(
        [
          '    bitmaps:',
          '        [0]:',
          '            flags:',
          '                [0]: in-use',
          '                [1]: auto',
          '            name: bm0',
          '            granularity: 65536',
          '        [1]:',
          '            flags:',
          '            name: bm1',
          '            granularity: 524288',
          '    refcount bits: 16',
        ].join('\n'),
      );
      expect((await runCli(['io', '-r', file, '-c', 'read -P 0xaa 0 1M'])).exitCode).toBe(0);
      expect((await runCli(['convert', '-O', 'raw', file, `${dir}/b.raw`])).exitCode).toBe(0);
      expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'raw', file, `${dir}/b.raw`)).exitCode).toBe(0);
    });
  });

  it('--drop-bitmaps writes as the spec allows: QEMU no longer sees the bitmaps and their clusters leak', async () => {
    await inTempDir(async (dir) => {
      const file = await imageWithBitmaps(dir);
      const run = await runCli(['io', '--drop-bitmaps', file, '-c', 'write -P 0xbb 0 4k']);
      expect(run).toMatchObject({ exitCode: 0, stderr: '' });
      const info = JSON.parse((await qemuImg('info', '--output=json', file)).stdout) as { 'format-specific': { data: Record<string, unknown> } };
      expect(info['format-specific'].data).not.toHaveProperty('bitmaps');
      // The directory, both tables and both data clusters (both bitmaps were enabled for the write).
      const check = await qemuImg('check', '--output=json', file);
      expect(check.exitCode).toBe(3);
      expect(JSON.parse(check.stdout)).toMatchObject({ leaks: 5 });
      const ours = ourCheck(file, 'json');
      expect(ours.exitCode).toBe(3);
      expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(check.stdout));
      expect((await qemuImg('check', '-r', 'leaks', file)).exitCode).toBe(0);
      expect((await qemuIo(file, 'read -P 0xbb 0 4k', 'read -P 0xaa 4k 1020k')).stdout).not.toMatch(/fail|mismatch/i);
    });
  });

  it('snapshot -a refuses while the image has bitmaps, as qemu-img does, and writes nothing', async () => {
    await inTempDir(async (dir) => {
      const file = await imageWithBitmaps(dir);
      expect((await qemuImg('snapshot', '-c', 's1', file)).exitCode).toBe(0);
      // qemu-img's refusal still opens the image read-write (it sets and clears in_use flags).
      const theirs = await qemuImg('snapshot', '-a', 's1', file);
      const before = await readFile(file);
      expect(theirs.exitCode).toBe(1);
      expect(theirs.stderr).toBe("qemu-img: Could not apply snapshot 's1': Device has active dirty bitmaps");
      const ours = await runCli(['snapshot', '-a', 's1', file]);
      expect(ours.exitCode).toBe(theirs.exitCode);
      expect(ours.stderr).toMatch(/^qcow2-verify: could not apply snapshot 's1': Device has active dirty bitmaps \('bm0', 'bm1'\)/);
      expect((await readFile(file)).equals(before)).toBe(true);
      expect((await runCli(['snapshot', '-a', 's1', '--drop-bitmaps', file])).exitCode).toBe(0);
      expect((await qemuImg('snapshot', '-a', 's1', file)).exitCode).toBe(0);
    });
  });
});
