// convert never writes onto its input under another name: the same path, a
// `./` or `..` spelling, a relative path against an absolute one, a symlink and
// a hard link are all the same (device, inode) and refused before anything is
// opened. qemu-img convert refuses each of them too (through its image locks).
import { link, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

/** The names of `input` to try as an output: every one is the same file. */
async function otherNames(dir: string, input: string): Promise<string[]> {
  await link(input, `${dir}/hard-link`);
  await symlink(input, `${dir}/symlink`);
  await symlink(`${dir}/hard-link`, `${dir}/symlink-to-hard-link`);
  const rel = relative(process.cwd(), input);
  return [
    input,
    `${dir}/./${basename(input)}`,
    `${dir}/../${basename(dir)}/${basename(input)}`,
    rel.startsWith('.') ? rel : `./${rel}`,
    `${dir}/hard-link`,
    `${dir}/symlink`,
    `${dir}/symlink-to-hard-link`,
  ];
}

describe('convert onto another name of its input', () => {
  for (const kind of ['qcow2', 'raw'] as const) {
    it(`${kind} input: every other name is refused with exit 2, for -O raw and -O qcow2; the input is byte-identical`, async () => {
      await inTempDir(async (dir) => {
        const input = `${dir}/f.${kind}`;
        if (kind === 'qcow2') {
          await qemuImg('create', '-q', '-f', 'qcow2', input, '1M');
          expect((await qemuIo(input, 'write -P 0x5a 0 64k')).exitCode).toBe(0);
        } else {
          await writeFile(input, new Uint8Array(1 << 20).fill(0x5a));
        }
        const before = await readFile(input);
        for (const output of await otherNames(dir, input)) {
          for (const format of ['raw', 'qcow2']) {
            const r = await runCli(['convert', '-O', format, input, output]);
            expect(r.exitCode, `convert -O ${format} ${input} ${output}`).toBe(2);
            expect(r.stderr).toMatch(new RegExp(`^qcow2-verify: convert: output '.*' is the input '.*' \\(same file: device \\d+, inode \\d+\\); writing it would destroy the input\\n$`));
            expect((await readFile(input)).equals(before)).toBe(true);
            const qemu = await qemuImg('convert', '-f', kind, '-O', format, input, output);
            expect(qemu.exitCode, `qemu-img convert -O ${format} ${input} ${output}`).toBe(1);
            expect((await readFile(input)).equals(before)).toBe(true);
          }
        }
      });
    });
  }

  it('an output that is a symlink to another file is written (through the link), the input untouched', async () => {
    await inTempDir(async (dir) => {
      const input = `${dir}/f.raw`;
      await writeFile(input, new Uint8Array(4096).fill(3));
      await writeFile(`${dir}/other.raw`, new Uint8Array(10));
      await symlink(`${dir}/other.raw`, `${dir}/out-link`);
      expect((await runCli(['convert', '-O', 'raw', input, `${dir}/out-link`])).exitCode).toBe(0);
      expect((await readFile(`${dir}/other.raw`)).equals(await readFile(input))).toBe(true);
    });
  });
});
