// Backing chains through the CLI, each output compared with qemu-img / qemu-io 7.2
// on the same files: create -b -F, info --backing-chain, map (depth and File
// column), check, convert, io and snapshot on overlays, rebase and commit, and
// the refusals (missing backing file, loop, no backing format).
import { describe, expect, it } from 'vitest';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCheckWithChain } from '../../../cli/commands/check.js';
import { runCli } from '../run-cli.js';
import { expectClean, inTempDir, qemuImg, qemuIo } from '../qemu.js';

/** A raw file, a qcow2 on it, and in a subdirectory a qcow2 on that (a relative '../' name), with data in every layer. */
async function threeLayers(dir: string): Promise<string> {
  const raw = new Uint8Array(300 * 1024);
  raw.fill(1, 0, 4096);
  await writeFile(join(dir, 'r.img'), raw);
  const mid = await runCli(['create', '-b', 'r.img', '-F', 'raw', join(dir, 'mid.qcow2')]);
  expect(mid.exitCode, mid.stderr).toBe(0);
  expect(await runCli(['io', '-c', 'write -P 3 64k 4k', join(dir, 'mid.qcow2')])).toMatchObject({ exitCode: 0 });
  await mkdir(join(dir, 's'));
  const top = join(dir, 's', 'top.qcow2');
  expect((await runCli(['create', '-b', '../mid.qcow2', '-F', 'qcow2', top, '512k'])).exitCode).toBe(0);
  expect((await runCli(['io', '-c', 'write -P 2 8k 4k', top])).exitCode).toBe(0);
  return top;
}

/** Both commands' stdout and exit code. */
async function both(args: string[]): Promise<{ ours: { stdout: string; exitCode: number }; theirs: { stdout: string; exitCode: number } }> {
  const ours = await runCli(args);
  const theirs = await qemuImg(...args);
  return { ours: { stdout: ours.stdout.trimEnd(), exitCode: ours.exitCode }, theirs: { stdout: theirs.stdout.trimEnd(), exitCode: theirs.exitCode } };
}

describe('chains through the CLI, against qemu-img 7.2', () => {
  it('create -b -F prints the Formatting line qemu-img prints and takes the backing size', async () => {
    await inTempDir(async (dir) => {
      await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'b.qcow2'), '1M');
      const ours = await runCli(['create', '-o', 'compat=0.10', '-b', 'b.qcow2', '-F', 'qcow2', join(dir, 'o.qcow2')]);
      const theirs = await qemuImg('create', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'b.qcow2', '-F', 'qcow2', join(dir, 't.qcow2'));
      expect(ours.stdout.trimEnd()).toBe(theirs.stdout.replace('t.qcow2', 'o.qcow2'));
      expect(ours.stdout).toContain('size=1048576 compat=0.10 backing_file=b.qcow2 backing_fmt=qcow2 lazy_refcounts=off');
      await expectClean(join(dir, 'o.qcow2'));
    });
  });

  it('info --backing-chain (text and json), map (human and json), check and info print what qemu-img prints', async () => {
    await inTempDir(async (dir) => {
      const top = await threeLayers(dir);
      for (const args of [
        ['info', '--backing-chain', top],
        ['info', '--backing-chain', '--output=json', top],
        ['info', top],
        ['map', top],
        ['map', '--output=json', top],
      ]) {
        const { ours, theirs } = await both(args);
        expect(ours, args.join(' ')).toEqual(theirs);
      }
      expect((await qemuImg('map', top)).stdout).toContain(`${dir}/s/../mid.qcow2`);
      const lines: string[] = [];
      expect(await runCheckWithChain(top, { output: 'human', forceShare: false }, (l) => lines.push(l), () => undefined)).toBe(0);
      expect(lines.join('\n')).toBe((await qemuImg('check', top)).stdout.trimEnd());
    });
  });

  it('convert flattens an overlay, io reads through it and snapshot works on it, as QEMU', async () => {
    await inTempDir(async (dir) => {
      const top = await threeLayers(dir);
      expect((await runCli(['convert', '-O', 'qcow2', top, join(dir, 'ours.qcow2')])).exitCode).toBe(0);
      await qemuImg('convert', '-O', 'qcow2', top, join(dir, 'theirs.qcow2'));
      expect((await qemuImg('compare', join(dir, 'ours.qcow2'), join(dir, 'theirs.qcow2'))).exitCode).toBe(0);
      expect((await qemuImg('info', join(dir, 'ours.qcow2'))).stdout).not.toContain('backing file');
      const read = ['read -P 1 0 4k', 'read -P 2 8k 4k', 'read -P 3 64k 4k', 'read -P 0 300k 212k'];
      expect((await runCli(['io', ...read.flatMap((c) => ['-c', c]), top])).stdout).not.toMatch(/fail|error/i);
      expect((await qemuIo(top, ...read)).stdout).not.toMatch(/fail|error/i);
      expect((await runCli(['snapshot', '-c', 'before', top])).exitCode).toBe(0);
      expect((await runCli(['io', '-c', 'write -P 9 0 64k', top])).exitCode).toBe(0);
      expect((await runCli(['snapshot', '-a', 'before', top])).exitCode).toBe(0);
      expect((await qemuIo(top, 'read -P 1 0 4k', 'read -P 0 4k 4k', 'read -P 2 8k 4k')).stdout).not.toMatch(/fail/i);
      await expectClean(top);
    });
  });

  it('rebase (safe and -u, onto another file and onto none) and commit leave what qemu-img leaves', async () => {
    await inTempDir(async (dir) => {
      const top = await threeLayers(dir);
      await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'other.qcow2'), '256k');
      await qemuIo(join(dir, 'other.qcow2'), 'write -P 9 0 64k');
      for (const who of ['ours', 'theirs']) await copyFile(top, join(dir, 's', `${who}.qcow2`));
      const ours = join(dir, 's', 'ours.qcow2');
      const theirs = join(dir, 's', 'theirs.qcow2');
      expect((await runCli(['rebase', '-b', '../other.qcow2', '-F', 'qcow2', ours])).exitCode).toBe(0);
      expect((await qemuImg('rebase', '-b', '../other.qcow2', '-F', 'qcow2', theirs)).exitCode).toBe(0);
      expect((await qemuImg('compare', ours, theirs)).exitCode).toBe(0);
      expect((await qemuImg('map', '--output=json', ours)).stdout).toBe((await qemuImg('map', '--output=json', theirs)).stdout);
      const noFormat = await runCli(['rebase', '-b', '../other.qcow2', ours]);
      expect(noFormat.exitCode).toBe(1);
      expect(noFormat.stderr).toContain("Could not change the backing file to '../other.qcow2': backing format must be specified");
      expect((await runCli(['rebase', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', ours])).exitCode).toBe(0);
      expect((await qemuImg('info', ours)).stdout).toContain('backing file: gone.qcow2');
      expect((await runCli(['rebase', '-u', '-b', '../other.qcow2', '-F', 'qcow2', ours])).exitCode).toBe(0);
      const committed = await runCli(['commit', ours]);
      expect(committed).toMatchObject({ exitCode: 0, stdout: 'Image committed.\n' });
      await expectClean(ours);
      await expectClean(join(dir, 'other.qcow2'));
      const commitBase = await runCli(['commit', join(dir, 'other.qcow2')]);
      expect(commitBase.exitCode).toBe(1);
      expect(commitBase.stderr).toContain('does not have a backing file');
    });
  });

  it('a missing backing file: check, map and io fail as QEMU does (exit 1), info still works', async () => {
    await inTempDir(async (dir) => {
      const top = join(dir, 'top.qcow2');
      const created = await runCli(['create', '-u', '-b', 'gone.qcow2', '-F', 'qcow2', top, '1M']);
      expect(created.exitCode).toBe(0);
      expect((await runCli(['create', '-b', 'gone.qcow2', '-F', 'qcow2', join(dir, 'x.qcow2'), '1M'])).exitCode).toBe(1);
      expect((await qemuImg('check', top)).exitCode).toBe(1);
      await expect(runCheckWithChain(top, { output: 'human', forceShare: false }, () => undefined, () => undefined)).rejects.toMatchObject({
        exitCode: 1,
        message: expect.stringContaining(`could not open backing file '${dir}/gone.qcow2': No such file or directory`) as unknown,
      });
      for (const args of [['map', top], ['info', top], ['info', '--output=json', top]]) {
        const { ours, theirs } = await both(args);
        expect(ours.exitCode, args.join(' ')).toBe(theirs.exitCode);
        if (theirs.exitCode === 0) expect(ours.stdout).toBe(theirs.stdout);
      }
      const io = await runCli(['io', '-c', 'read 0 512', top]);
      expect(io.exitCode).toBe((await qemuIo(top, 'read 0 512')).exitCode);
    });
  });

  it('a loop is refused by every command with one line (qemu-img info names it; qemu-io and check hang)', async () => {
    await inTempDir(async (dir) => {
      const a = join(dir, 'a.qcow2');
      const b = join(dir, 'b.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', a, '1M');
      await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'a.qcow2', '-F', 'qcow2', b, '1M');
      await qemuImg('rebase', '-u', '-b', 'b.qcow2', '-F', 'qcow2', a);
      const theirs = await qemuImg('info', '--backing-chain', a);
      const ours = await runCli(['info', '--backing-chain', a]);
      expect(ours.exitCode).toBe(theirs.exitCode);
      expect(ours.stderr).toContain(theirs.stderr.replace('qemu-img: ', ''));
      for (const args of [['map', a], ['io', '-c', 'read 0 512', a]]) {
        const r = await runCli(args);
        expect(r.exitCode, args.join(' ')).toBe(1);
        expect(r.stderr).toMatch(/creates a loop/);
      }
      await expect(runCheckWithChain(a, { output: 'human', forceShare: false }, () => undefined, () => undefined)).rejects.toMatchObject({ exitCode: 1 });
    });
  });
});
