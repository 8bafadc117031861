// The `check` CLI command (cli/commands/check.ts) on a QEMU-made image: same
// human report and JSON as qemu-img check, same exit codes.
import { writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { runCheck } from '../../cli/commands/check.js';
import { CliError } from '../../cli/fatal.js';
import { imageBytes, join, qemuApply, qemuCreate, withTempDir } from './qemu.js';

function capture(file: string, output: 'human' | 'json') {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = runCheck(file, { output, forceShare: false }, (l) => out.push(l), (l) => err.push(l));
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

  it('exits 1 with one line when the image cannot be opened', async () => {
    await withTempDir(async (d) => {
      const file = join(d, 'junk');
      await writeFile(file, new Uint8Array(4096).fill(7));
      expect(() => capture(file, 'json')).toThrow(CliError);
      expect(() => capture(file, 'json')).toThrow(/magic/);
      expect(() => capture(join(d, 'missing'), 'human')).toThrow(/Could not open/);
    });
  });
});
