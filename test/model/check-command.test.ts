// The `check` CLI command (cli/commands/check.ts) on a QEMU-made image: same
// human report and JSON as qemu-img check, same exit codes.
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { runCheck } from '../../cli/commands/check.js';
import { CliError } from '../../cli/fatal.js';
import { imageBytes, join, qemuApply, qemuCreate, withTempDir } from './qemu.js';

function capture(file: string, output: 'human' | 'json', format?: string) {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = runCheck(file, { output, forceShare: false, ...(format === undefined ? {} : { format }) }, (l) => out.push(l), (l) => err.push(l));
  return { exitCode, stdout: out.join('\n') + '\n', stderr: err };
}

describe('qcow2-verify check', () => {
  it('prints what qemu-img check prints, clean then leaking, and exits like it', async () => {
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 });
      await qemuApply(file, [{ kind: 'write', offset: 0, length: 200_000, pattern: 1 }]);
      for (const damage of [false, true]) {
        if (damage) {
          // One more cluster at the end of the file, counted but referenced by nothing: a leak.
          const old = await imageBytes(file);
          const clusters = Math.ceil(old.length / 0x10000);
          const bytes = new Uint8Array((clusters + 1) * 0x10000);
          bytes.set(old);
          new DataView(bytes.buffer).setUint16(0x20000 + 2 * clusters, 1);
          await writeFile(file, bytes);
        }
        const qemu = await execa('qemu-img', ['check', file], { reject: false });
        const ours = capture(file, 'human');
        expect(ours.stdout).toBe(qemu.stdout + '\n');
        expect(ours.exitCode).toBe(qemu.exitCode);
        expect(ours.exitCode).toBe(damage ? 3 : 0);
        const qemuJson = await execa('qemu-img', ['check', '--output=json', file], { reject: false });
        expect(JSON.parse(capture(file, 'json').stdout)).toEqual(JSON.parse(qemuJson.stdout));
      }
    });
  });

  /** What runCheck threw, as the CLI reports it. */
  function refusal(file: string, format?: string): CliError {
    try {
      capture(file, 'human', format);
    } catch (error) {
      expect(error).toBeInstanceOf(CliError);
      return error as CliError;
    }
    throw new Error(`check of ${file} did not fail`);
  }

  it('exits like qemu-img check when the image cannot be checked, with one line naming the file', async () => {
    await withTempDir(async (d) => {
      const junk = join(d, 'junk');
      await writeFile(junk, new Uint8Array(4096).fill(7));
      const empty = join(d, 'empty');
      await writeFile(empty, new Uint8Array(0));
      // Not qcow2 to qemu-img's probe: another format, which has no check (63); with -f qcow2, not openable (1).
      for (const file of [junk, empty]) {
        const qemu = await execa('qemu-img', ['check', file], { reject: false });
        expect(qemu.stderr).toContain('This image format does not support checks');
        expect(refusal(file)).toMatchObject({ exitCode: qemu.exitCode, message: expect.stringContaining('This image format does not support checks') as unknown });
        expect(qemu.exitCode).toBe(63);
        const qemuQcow2 = await execa('qemu-img', ['check', '-f', 'qcow2', file], { reject: false });
        expect(refusal(file, 'qcow2')).toMatchObject({ exitCode: qemuQcow2.exitCode, message: expect.stringMatching(/^could not open '.*': invalid magic at byte 0: /) as unknown });
      }
      expect(refusal(junk, 'raw').exitCode).toBe(63);
      // A 50-byte qcow2 file: qemu-img says the header is too short, and so do we.
      const short = join(d, 'short.qcow2');
      await qemuCreate(short, { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 });
      await writeFile(short, (await imageBytes(short)).subarray(0, 50));
      const qemuShort = await execa('qemu-img', ['check', short], { reject: false });
      expect(qemuShort.stderr).toContain('qcow2 header too short');
      expect(refusal(short)).toMatchObject({
        exitCode: qemuShort.exitCode,
        message: `could not open '${short}': qcow2 header too short: the file has only 50 bytes (at least 104)`,
      });
      expect(refusal(join(d, 'missing')).message).toMatch(/^could not open '.*missing': /);
      expect(refusal(d)).toMatchObject({ exitCode: 1, message: `could not open '${d}': not a regular file` });
    });
  });
  it('names the compressed stream of an entry with COPIED as qemu-img does (coffset=…)', async () => {
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 });
      expect((await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -c -P 5 0 8k', file], { reject: false })).exitCode).toBe(0);
      const bytes = await imageBytes(file);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const l2 = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00ff_ffff_ffff_fe00n);
      view.setBigUint64(l2 + 8, view.getBigUint64(l2 + 8) | (1n << 63n)); // COPIED on the second stream
      await writeFile(file, bytes);
      const qemu = await execa('qemu-img', ['check', file], { reject: false });
      expect(qemu.stderr).toMatch(/^ERROR: coffset=0x[0-9a-f]+: copied flag must never be set for compressed clusters$/m);
      const ours = capture(file, 'human');
      expect(ours.stderr.join('\n')).toBe(qemu.stderr);
      expect(ours.exitCode).toBe(qemu.exitCode);
    });
  });
});
