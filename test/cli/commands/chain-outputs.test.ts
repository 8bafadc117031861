// What `check` and `info` print on overlays, byte for byte against qemu-img
// 7.2: the allocation percentages of the check report (printf's %.2f, whose
// exact ties go to even: 1/32 = 3.12%), and an overlay whose backing name is
// empty in the header but whose backing-format extension remains (qemu-img
// info shows no backing format then).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printfFixed2, runCheckWithChain } from '../../../cli/commands/check.js';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

/** qcow2 header: backing_file_size, a u32 at byte 16 (docs/interop/qcow2.txt). */
const backingFileSizeOffset = 16;

describe('check and info on overlays print what qemu-img prints', () => {
  it("printf's %.2f: exact ties to even, everything else to nearest", () => {
    expect([3.125, 0.125, 0.375, 12.5 / 100, 100 / 3, 50, 2.675].map(printfFixed2)).toEqual(['3.12', '0.12', '0.38', '0.12', '33.33', '50.00', '2.67']);
  });

  it('check of an overlay and its backing file with 1 of 32 clusters allocated', async () => {
    await inTempDir(async (dir) => {
      const base = join(dir, 'base.qcow2');
      const top = join(dir, 'top.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', base, '2M');
      expect((await qemuIo(base, 'write -P 1 0 64k')).exitCode).toBe(0);
      await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top);
      expect((await qemuIo(top, 'write -P 2 1M 4k')).exitCode).toBe(0);
      for (const file of [base, top]) {
        const theirs = await qemuImg('check', file);
        expect(theirs.stdout).toContain('1/32 = 3.12% allocated');
        const lines: string[] = [];
        const exitCode = await runCheckWithChain(file, { output: 'human', forceShare: false }, (line) => lines.push(line), () => undefined);
        expect({ exitCode, stdout: lines.join('\n') }).toEqual({ exitCode: theirs.exitCode, stdout: theirs.stdout });
      }
    });
  });

  it('info of an overlay whose backing name was emptied (the format extension left): no backing file, no format', async () => {
    await inTempDir(async (dir) => {
      await qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '1M');
      const top = join(dir, 'top.qcow2');
      await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top);
      const file = await open(top, 'r+');
      await file.write(new Uint8Array(4), 0, 4, backingFileSizeOffset);
      await file.close();
      for (const args of [['info', top], ['info', '--output=json', top], ['info', '--backing-chain', top]]) {
        const theirs = await qemuImg(...args);
        expect(theirs.stdout).not.toContain('backing');
        expect((await runCli(args)).stdout.trimEnd(), args.join(' ')).toBe(theirs.stdout);
      }
    });
  });
});
