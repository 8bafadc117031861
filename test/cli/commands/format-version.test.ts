// qemu-img command lines work as they are: every command that opens an image
// takes `-f qcow2` and refuses another format clearly; `--version` names our
// version and QEMU's; `info` describes an image whose tables lie past the end
// of the file, as qemu-img info does.
import { readFile, truncate } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

async function qemuImage(dir: string): Promise<string> {
  const file = `${dir}/a.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4k', file, '1M')).exitCode).toBe(0);
  expect((await qemuIo(file, 'write -P 7 0 8k')).exitCode).toBe(0);
  return file;
}

describe('-f and --version', () => {
  it('every command that opens an image accepts -f qcow2 and gives what it gives without it', async () => {
    await inTempDir(async (dir) => {
      const file = await qemuImage(dir);
      const commands: readonly (readonly string[])[] = [
        ['info', file],
        ['map', file],
        ['check', file],
        ['io', '-r', file, '-c', 'read -P 7 0 8k'],
        ['snapshot', '-l', file],
        ['convert', '-O', 'raw', file, `${dir}/out.raw`],
      ];
      for (const args of commands) {
        const [command = '', ...rest] = args;
        const plain = await runCli(args);
        const withFormat = await runCli([command, '-f', 'qcow2', ...rest]);
        expect(withFormat, args.join(' ')).toEqual(plain);
        expect(plain.exitCode, args.join(' ')).toBe(0);
      }
      expect((await runCli(['create', '-f', 'qcow2', '-q', `${dir}/b.qcow2`, '1M'])).exitCode).toBe(0);
    });
  });

  it('another format is refused before any file is opened, naming what is accepted', async () => {
    await inTempDir(async (dir) => {
      const file = await qemuImage(dir);
      for (const command of ['info', 'map', 'snapshot', 'io']) {
        const run = await runCli([command, '-f', 'vmdk', file]);
        expect(run.exitCode, command).toBe(2);
        expect(run.stderr, command).toBe(`qcow2-verify: ${command}: unsupported format 'vmdk' (only qcow2)\n`);
      }
      const convert = await runCli(['convert', '-f', 'vmdk', file, `${dir}/out.raw`]);
      expect(convert).toMatchObject({ exitCode: 2, stderr: "qcow2-verify: convert: unsupported format 'vmdk' (only qcow2 or raw)\n" });
      // qemu-img check -f raw: "This image format does not support checks", exit 63.
      const qemuCheck = await qemuImg('check', '-f', 'raw', file);
      const check = await runCli(['check', '-f', 'raw', file]);
      expect(check.exitCode).toBe(qemuCheck.exitCode);
      expect(check.stderr).toContain('This image format does not support checks');
      // -f raw on convert copies the qcow2 file's bytes as they are, as qemu-img convert -f raw does.
      expect((await runCli(['convert', '-f', 'raw', '-O', 'raw', file, `${dir}/bytes.raw`])).exitCode).toBe(0);
      expect(Buffer.compare(await readFile(`${dir}/bytes.raw`), await readFile(file))).toBe(0);
    });
  });

  it("--version prints ours, then qemu-img's and qemu-io's version lines", async () => {
    const run = await runCli(['--version']);
    expect(run.exitCode).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^qcow2-verify version \d+\.\d+\.\d+$/);
    expect(lines[1]).toBe((await qemuImg('--version')).stdout.split('\n')[0]);
    expect(lines[2]).toMatch(/^qemu-io version /);
  });
});

describe('info needs only the header', () => {
  it('describes an image whose L1 table lies past the end of the file, as qemu-img info does', async () => {
    await inTempDir(async (dir) => {
      const file = await qemuImage(dir);
      // Only the header cluster is left: the L1 table (and every other table) lies past the end.
      expect(Number(new DataView((await readFile(file)).buffer).getBigUint64(40))).toBeGreaterThan(2 * 4096);
      await truncate(file, 4096);
      const qemu = await qemuImg('info', '--output=json', file);
      expect(qemu.exitCode).toBe(0);
      const ours = await runCli(['info', '--output=json', file]);
      expect(ours.stderr).toBe('');
      expect(JSON.parse(ours.stdout)).toEqual(JSON.parse(qemu.stdout));
      // A read-write open is stricter, and says so.
      const io = await runCli(['io', file, '-c', 'write 0 512']);
      expect(io.exitCode).toBe(1);
      expect(io.stderr).toContain('read-write open refuses it before any write; a read-only open reports it on access, as QEMU does');
    });
  });
});

describe('a directory given as the image', () => {
  it('every command refuses it with the same words, as qemu-img does at open', async () => {
    await inTempDir(async (dir) => {
      const qemu = await qemuImg('info', dir);
      expect(qemu.stderr).toContain('to be a regular file');
      const commands: readonly (readonly string[])[] = [
        ['info', dir],
        ['map', dir],
        ['map', '--output=html', dir],
        ['check', dir],
        ['io', '-r', dir, '-c', 'read 0 512'],
        ['io', dir, '-c', 'write 0 512'],
        ['snapshot', '-l', dir],
        ['snapshot', '-c', 's', dir],
        ['convert', '-O', 'raw', dir, `${dir}.raw`],
      ];
      for (const args of commands) {
        const run = await runCli(args);
        expect(run.exitCode, args.join(' ')).toBe(1);
        expect(run.stderr, args.join(' ')).toMatch(new RegExp(`'${dir}'.*: not a regular file\\n$`));
      }
    });
  });
});
