import { readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readScript } from '../../../cli/commands/io.js';
import { runCli } from '../run-cli.js';
import { expectClean, inTempDir, qemuImg, qemuIo } from '../qemu.js';

describe('io (end to end against qemu-io)', () => {
  it.each([['compat=1.1'], ['compat=0.10,cluster_size=4k']])(
    'writes, zero-writes and discards that qemu-io reads back (%s)',
    async (options) => {
      await inTempDir(async (dir) => {
        const file = `${dir}/a.qcow2`;
        expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, file, '4M')).exitCode).toBe(0);
        const r = await runCli([
          'io', file,
          '-c', 'write -P 0xab 0 192k',
          '-c', 'write -P 0x11 200000 3',
          '-c', 'write -z 64k 64k',
          '-c', 'write -z -u 1M 4k',
          '-c', 'write -P 0x22 2M 128k',
          '-c', 'discard 2M 64k',
          '-c', 'read -P 0x22 2112k 64k',
          '-c', 'flush',
          '-c', 'truncate 8M',
          '-c', 'write -P 0x33 7M 1M',
        ]);
        expect(r.stderr).toBe('');
        expect(r.exitCode).toBe(0);
        expect(r.stdout.split('\n').slice(0, 3)).toEqual([
          'wrote 196608/196608 bytes at offset 0',
          'wrote 3/3 bytes at offset 200000',
          'wrote 65536/65536 bytes at offset 65536',
        ]);
        expect(r.stdout).toContain('discard 65536/65536 bytes at offset 2097152\nread 65536/65536 bytes at offset 2162688\n');
        const q = await qemuIo(
          file,
          'read -P 0xab 0 64k', 'read -P 0 64k 64k', 'read -P 0xab 128k 64k', 'read -P 0 192k 3392',
          'read -P 0x11 200000 3', 'read -P 0 200003 62141', 'read -P 0 1M 4k', 'read -P 0 2M 64k', 'read -P 0x22 2112k 64k',
          'read -P 0 4M 3M', 'read -P 0x33 7M 1M',
        );
        expect(q.stdout).not.toContain('Pattern verification failed');
        expect(q.exitCode).toBe(0);
        expect((await qemuImg('info', file)).stdout).toContain('virtual size: 8 MiB (8388608 bytes)');
        await expectClean(file);
      });
    },
  );

  it('reads a script from stdin when no -c is given, skipping blanks and comments', async () => {
    const stdin = Object.assign(Readable.from(['# setup\nwrite -P 5 0 512\n', '\n  read -P 5 0 512\n']), { isTTY: false });
    expect(await readScript([], stdin)).toEqual([
      { kind: 'write', offset: 0, length: 512, pattern: 5, quiet: false },
      { kind: 'read', offset: 0, length: 512, pattern: 5, quiet: false },
    ]);
    const tty = Object.assign(Readable.from([]), { isTTY: true });
    await expect(readScript([], tty)).rejects.toThrow(/no commands: give -c COMMAND/);
    expect(await readScript(['flush'], tty)).toEqual([{ kind: 'flush' }]);
  });

  it('read -P on other data names the first differing offset and exits 1', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/a.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', file, '1M');
      await qemuIo(file, 'write -P 0xab 0 8k', 'write -P 0xcd 5000 1');
      const r = await runCli(['io', file, '-c', 'read -P 0xab 0 8k', '-c', 'read -P 0xab 0 4k']);
      // qemu-io 7.2 prints the same "read N/N bytes at offset M" line after its
      // "Pattern verification failed at offset 0, 8192 bytes" (measured: test/cli/io-commands/run.test.ts)
      expect(r.stdout).toBe(
        'Pattern verification failed at offset 5000: expected 0xab, found 0xcd (read of 8192 bytes at offset 0)\n' +
          'read 8192/8192 bytes at offset 0\n' +
          'read 4096/4096 bytes at offset 0\n',
      );
      const q = await qemuIo(file, 'read -P 0xab 0 8k');
      expect(q.stdout).toMatch(/^Pattern verification failed at offset 0, 8192 bytes\nread 8192\/8192 bytes at offset 0\n/);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe('qcow2-verify: io: 1 of 2 commands failed\n');
    });
  });

  it('a write past the end prints "write failed" and exits 1; the image stays clean', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/a.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', file, '1M');
      const r = await runCli(['io', file, '-c', 'write 1020k 8k', '-c', 'write -P 7 0 512']);
      expect(r.stdout).toMatch(/^write failed: .*\(out-of-range\)\nwrote 512\/512 bytes at offset 0\n$/);
      expect(r.exitCode).toBe(1);
      expect((await qemuIo(file, 'read -P 0 1020k 4k', 'read -P 7 0 512')).stdout).not.toContain('failed');
      await expectClean(file);
    });
  });

  it('a read that meets damage fails with the fault and the script goes on, as qemu-io -r does', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/d.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', file, '4M');
      await qemuIo(file, 'write -P 0xab 0 8k', 'write -P 0x11 3M 4k');
      // L1 entry 0 (guest 0..2M) gets an unaligned L2 offset; entry 1 (2M..4M) stays sound
      const bytes = await readFile(file);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const l1 = Number(view.getBigUint64(40));
      view.setBigUint64(l1, view.getBigUint64(l1) + 0x200n);
      await writeFile(file, bytes);
      const script = ['read 0 512', 'read -P 0x11 3M 4k'];
      const qemu = await execa('qemu-io', ['-r', '-f', 'qcow2', ...script.flatMap((c) => ['-c', c]), file], { reject: false });
      expect(qemu.stdout).toMatch(/^read failed: Input\/output error\nread 4096\/4096 bytes at offset 3145728\n/);
      expect(qemu.exitCode).toBe(1);
      const r = await runCli(['io', '-r', file, ...script.flatMap((c) => ['-c', c])]);
      expect(r.stdout).toMatch(/^read failed: L2 table offset 0x[0-9a-f]+ unaligned \(L1 index: 0\) \(corrupt\)\nread 4096\/4096 bytes at offset 3145728\n$/);
      expect(r.exitCode).toBe(1);
      expect(Buffer.compare(await readFile(file), bytes)).toBe(0);
    });
  });

  it('-r opens read-only: reads work, writes are refused and the file is untouched', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/a.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', file, '1M');
      await qemuIo(file, 'write -P 9 0 4k');
      const before = await readFile(file);
      const r = await runCli(['io', '-r', file, '-c', 'read -P 9 0 4k', '-c', 'write -P 1 0 4k', '-c', 'discard 0 64k']);
      expect(r.stdout).toMatch(/^read 4096\/4096 bytes at offset 0\nwrite failed: .*\(read-only\)\ndiscard failed: .*\(read-only\)\n$/);
      expect(r.exitCode).toBe(1);
      expect(Buffer.compare(await readFile(file), before)).toBe(0);
    });
  });

  it('a bad command is a usage error (exit 2) and nothing runs', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/a.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', file, '1M');
      const before = await readFile(file);
      const r = await runCli(['io', file, '-c', 'write -P 1 0 4k', '-c', 'write -P 300 0 1']);
      expect(r.exitCode).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe("qcow2-verify: io command 'write -P 300 0 1': 300 is not a valid pattern byte (0…255, or 0x00…0xff)\n");
      expect(Buffer.compare(await readFile(file), before)).toBe(0);
    });
  });

  it('a missing file or a file that is not qcow2 is one line and exit 1', async () => {
    await inTempDir(async (dir) => {
      const missing = await runCli(['io', `${dir}/nope.qcow2`, '-c', 'flush']);
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toMatch(/^qcow2-verify: could not open '.*nope\.qcow2': .*\n$/);
      await qemuImg('create', '-q', '-f', 'raw', `${dir}/raw.img`, '1M');
      const raw = await runCli(['io', `${dir}/raw.img`, '-c', 'flush']);
      expect(raw.exitCode).toBe(1);
      expect(raw.stderr).toMatch(/^qcow2-verify: could not open '.*raw\.img': [^\n]+\n$/);
    });
  });
});
