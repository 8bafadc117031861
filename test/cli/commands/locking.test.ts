// The CLI under QEMU's image locks, against a real qemu-io holding the image:
// every command that writes is refused with the lock's name and exit 1, the
// image byte-identical afterwards; readers are refused without -U and served
// with it; -U with a write is a usage error, as qemu-img refuses it too.
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { openQemuIo, type QemuIoSession } from '../../../oracle/qemu-io/session.js';
import { runCli } from '../run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

async function makeImage(dir: string): Promise<string> {
  const path = `${dir}/a.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', path, '1M')).exitCode).toBe(0);
  expect((await qemuIo(path, 'write -P 0x11 0 64k')).exitCode).toBe(0);
  return path;
}

/** Runs `body` while a qemu-io session holds `path`; checks the file is byte-identical afterwards. */
async function whileQemuHolds(path: string, readOnly: boolean, body: (session: QemuIoSession) => Promise<void>): Promise<void> {
  const before = await readFile(path);
  const session = await openQemuIo(path, { readOnly });
  try {
    await body(session);
  } finally {
    await session.close();
  }
  expect((await readFile(path)).equals(before)).toBe(true);
}

const writeLock = (path: string) => `Failed to get "write" lock: byte 201 of '${path}' is locked by another process (is another process using the image?)`;
const sharedWriteLock = (path: string) => `Failed to get shared "write" lock: byte 101 of '${path}' is locked by another process (is another process using the image?)`;

describe('commands while qemu-io holds the image read-write', () => {
  it('writers are refused with exit 1 and the lock named; the image is unchanged', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      await writeFile(`${dir}/in.raw`, new Uint8Array(4096).fill(9));
      await whileQemuHolds(path, false, async () => {
        const cases: Array<[string[], string]> = [
          [['io', path, '-c', 'write -P 7 0 4k'], `qcow2-verify: could not open '${path}': ${writeLock(path)}\n`],
          [['snapshot', '-c', 'x', path], `qcow2-verify: could not open '${path}': ${writeLock(path)}\n`],
          [['snapshot', '-d', 'x', path], `qcow2-verify: could not open '${path}': ${writeLock(path)}\n`],
          [['create', '-q', path, '1M'], `qcow2-verify: could not create '${path}': ${writeLock(path)}\n`],
          [['convert', '-O', 'qcow2', `${dir}/in.raw`, path], `qcow2-verify: convert '${dir}/in.raw' to '${path}': ${writeLock(path)}\n`],
          [['convert', '-O', 'raw', `${dir}/in.raw`, path], `qcow2-verify: convert '${dir}/in.raw' to '${path}': ${writeLock(path)}\n`],
        ];
        for (const [args, stderr] of cases) expect(await runCli(args), args.join(' ')).toEqual({ stdout: '', stderr, exitCode: 1 });
      });
    });
  });

  it('readers are refused without -U (exit 1, check exits 1 as qemu-img check) and served with it', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      await whileQemuHolds(path, false, async () => {
        const refused = `qcow2-verify: could not open '${path}': ${sharedWriteLock(path)}\n`;
        for (const args of [['info', path], ['map', path], ['snapshot', '-l', path], ['io', '-r', path, '-c', 'read 0 4k']]) {
          expect(await runCli(args), args.join(' ')).toEqual({ stdout: '', stderr: refused, exitCode: 1 });
        }
        expect(await runCli(['check', path])).toEqual({ stdout: '', stderr: `qcow2-verify: could not open '${path}': ${sharedWriteLock(path)}\n`, exitCode: 1 });
        const qemuCheck = await qemuImg('check', path);
        expect(qemuCheck.exitCode).toBe(1);
        expect(qemuCheck.stderr).toContain('Failed to get shared "write" lock');
        expect((await runCli(['convert', '-O', 'raw', path, `${dir}/out.raw`])).stderr).toContain(sharedWriteLock(path));
        for (const args of [['info', '-U', path], ['map', '-U', path], ['snapshot', '-l', '-U', path], ['io', '-r', '-U', path, '-c', 'read -P 0x11 0 4k']]) {
          const r = await runCli(args);
          expect([r.exitCode, r.stderr], args.join(' ')).toEqual([0, '']);
        }
        expect((await runCli(['check', '-U', path])).exitCode).toBe(0);
        expect((await runCli(['convert', '-U', '-O', 'raw', path, `${dir}/out.raw`])).exitCode).toBe(0);
        expect((await readFile(`${dir}/out.raw`)).subarray(0, 65536).every((byte) => byte === 0x11)).toBe(true);
      });
    });
  });
});

describe('commands while qemu-io -r holds the image', () => {
  it('readers may open it, writers may not', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      await whileQemuHolds(path, true, async () => {
        expect((await runCli(['info', path])).exitCode).toBe(0);
        expect((await runCli(['check', path])).exitCode).toBe(0);
        expect(await runCli(['io', path, '-c', 'write 0 4k'])).toMatchObject({ exitCode: 1, stderr: `qcow2-verify: could not open '${path}': ${writeLock(path)}\n` });
      });
    });
  });
});

describe('convert of a raw input that qemu-io -f raw holds read-write', () => {
  it('is refused as qemu-img convert refuses it (its inputs are readers: bytes 100, 201, 203), and allowed with -U', async () => {
    await inTempDir(async (dir) => {
      const input = `${dir}/in.raw`;
      await writeFile(input, new Uint8Array(65536).fill(4));
      const session = await openQemuIo(input, { format: 'raw' });
      try {
        const ours = await runCli(['convert', '-O', 'qcow2', input, `${dir}/ours.qcow2`]);
        expect(ours).toEqual({ stdout: '', stderr: `qcow2-verify: convert '${input}' to '${dir}/ours.qcow2': ${sharedWriteLock(input)}\n`, exitCode: 1 });
        const qemu = await qemuImg('convert', '-f', 'raw', '-O', 'qcow2', input, `${dir}/qemu.qcow2`);
        expect([qemu.exitCode, qemu.stderr]).toEqual([1, `qemu-img: Could not open '${input}': Failed to get shared "write" lock\nIs another process using the image [${input}]?`]);
        expect((await runCli(['convert', '-U', '-O', 'qcow2', input, `${dir}/ours.qcow2`])).exitCode).toBe(0);
        expect((await qemuImg('convert', '-U', '-f', 'raw', '-O', 'qcow2', input, `${dir}/qemu.qcow2`)).exitCode).toBe(0);
      } finally {
        await session.close();
      }
    });
  });
});

describe('-U with a write', () => {
  it('is a usage error before anything is opened (qemu-img: "force-share=on can only be used with read-only images", exit 1)', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const before = await readFile(path);
      expect(await runCli(['io', '-U', path, '-c', 'write 0 4k'])).toEqual({
        stdout: '',
        stderr: 'qcow2-verify: io: force-share=on (-U) can only be used with read-only images\n',
        exitCode: 2,
      });
      expect(await runCli(['snapshot', '-U', '-c', 'x', path])).toEqual({
        stdout: '',
        stderr: 'qcow2-verify: snapshot: force-share=on (-U) can only be used with read-only images\n',
        exitCode: 2,
      });
      const qemu = await qemuImg('snapshot', '-U', '-c', 'x', path);
      expect([qemu.exitCode, qemu.stderr]).toEqual([1, `qemu-img: Could not open '${path}': force-share=on can only be used with read-only images`]);
      expect((await readFile(path)).equals(before)).toBe(true);
    });
  });
});
