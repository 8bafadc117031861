// Image locking against a real QEMU: the same lock bytes as qemu-io holds,
// conflicts refused both ways with QEMU's words, and locks that end with the
// open file (on close, and when the holding process is SIGKILLed).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Qcow2Image, Qcow2LockError } from '../../../impl/index.js';
import { openQemuIo } from '../../../oracle/qemu-io/session.js';
import { inTempDir, qemuImg, qemuIo } from '../../cli/qemu.js';

/**
 * The byte ranges of the OFD locks on `path` in /proc/locks, as "start-end",
 * sorted. The kernel names a file "MAJOR:MINOR:INODE", major and minor in hex.
 */
async function lockedBytes(path: string): Promise<string[]> {
  const { dev, ino } = await stat(path);
  const hex2 = (n: number) => n.toString(16).padStart(2, '0');
  const major = ((dev >> 8) & 0xfff) | Math.floor(dev / 2 ** 32) & ~0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const file = `${hex2(major)}:${hex2(minor)}:${ino}`;
  const lines = (await readFile('/proc/locks', 'utf8')).split('\n');
  const ranges = lines
    .map((line) => line.split(/\s+/).filter((field) => field !== '' && !field.endsWith(':') && field !== '->'))
    .filter((fields) => fields[0] === 'OFDLCK' && fields[4] === file)
    .map((fields) => { expect(fields[2]).toBe('READ'); return `${fields[5]}-${fields[6]}`; });
  // The byte ranges held, each once: under heavy load /proc/locks was seen to list
  // one holder's ranges twice for a moment (a full run at load ~20, not reproduced alone).
  return [...new Set(ranges)].sort();
}

/** Creates a 1 MiB qcow2 image with qemu-img whose first cluster holds 0x11. */
async function makeImage(dir: string): Promise<string> {
  const path = `${dir}/a.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', path, '1M')).exitCode).toBe(0);
  expect((await qemuIo(path, 'write -P 0x11 0 64k')).exitCode).toBe(0);
  return path;
}

const viteNode = fileURLToPath(new URL('../../../node_modules/.bin/vite-node', import.meta.url));
const holdImageScript = fileURLToPath(new URL('./hold-image.ts', import.meta.url));

/** Starts a child process that holds `path` open with the engine; resolves once it holds it. */
async function holdInChild(path: string, mode: 'rw' | 'ro'): Promise<ChildProcessWithoutNullStreams> {
  const child = spawn(viteNode, [holdImageScript], {
    env: { ...process.env, QCOW2_HOLD_PATH: path, QCOW2_HOLD_MODE: mode },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('held')) resolve();
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code, signal) => reject(new Error(`holder exited (${code ?? signal}) before holding: ${output}`)));
  });
  return child;
}

describe('image locks as QEMU file-posix takes them', () => {
  it.each([
    { mode: 'read-write', qemuIo: { readOnly: false }, ours: { readOnly: false }, bytes: ['100-101', '103-103', '201-201', '203-203'] },
    { mode: 'read-only', qemuIo: { readOnly: true }, ours: { readOnly: true }, bytes: ['100-100', '201-201', '203-203'] },
  ])('$mode: the engine holds exactly the bytes qemu-io holds ($bytes)', async ({ qemuIo: qemuMode, ours, bytes }) => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const session = await openQemuIo(path, qemuMode);
      const qemuBytes = await lockedBytes(path);
      await session.close();
      const image = await Qcow2Image.openFile(path, ours);
      const ourBytes = await lockedBytes(path);
      await image.close();
      expect(ourBytes).toEqual(qemuBytes);
      expect(ourBytes).toEqual(bytes);
      expect(await lockedBytes(path)).toEqual([]);
    });
  });

  it('force-share (-U): byte 100 only, as qemu-io -r -U; with write access it is refused in QEMU\'s words', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const image = await Qcow2Image.openFile(path, { readOnly: true, forceShare: true });
      expect(await lockedBytes(path)).toEqual(['100-100']);
      await image.close();
      await expect(Qcow2Image.openFile(path, { readOnly: false, forceShare: true })).rejects.toMatchObject({
        code: 'invalid-argument',
        message: 'force-share=on can only be used with read-only images',
      });
      const held = await execQemuIoHeld(path, ['-r', '-U']);
      expect(held).toEqual(['100-100']);
    });
  });

  it('while qemu-io holds the image read-write, the engine is refused for writing and reading, not with -U', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const before = await readFile(path);
      const session = await openQemuIo(path);
      try {
        const write = Qcow2Image.openFile(path, { readOnly: false });
        await expect(write).rejects.toBeInstanceOf(Qcow2LockError);
        await expect(write).rejects.toMatchObject({ code: 'locked', permission: 'write', byte: 201 });
        await expect(write).rejects.toThrow(/^Failed to get "write" lock: byte 201 of '.*a\.qcow2' is locked by another process/);
        const read = Qcow2Image.openFile(path, { readOnly: true });
        await expect(read).rejects.toMatchObject({ code: 'locked', permission: 'write', byte: 101 });
        await expect(read).rejects.toThrow(/^Failed to get shared "write" lock: byte 101/);
        await expect(Qcow2Image.createFile(path, { size: 1 << 20 })).rejects.toMatchObject({ code: 'locked', byte: 201 });
        const shared = await Qcow2Image.openFile(path, { readOnly: true, forceShare: true });
        expect(Array.from(await shared.read(0, 4))).toEqual([0x11, 0x11, 0x11, 0x11]);
        await shared.close();
      } finally {
        await session.close();
      }
      expect((await readFile(path)).equals(before)).toBe(true); // the refused create emptied nothing
    });
  });

  it('while qemu-io -r holds the image, the engine may read but not write', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const session = await openQemuIo(path, { readOnly: true });
      try {
        await expect(Qcow2Image.openFile(path, { readOnly: false })).rejects.toMatchObject({ code: 'locked', byte: 201 });
        const reader = await Qcow2Image.openFile(path, { readOnly: true });
        await reader.close();
      } finally {
        await session.close();
      }
    });
  });

  it('while the engine holds the image read-write, qemu-io and qemu-img info refuse as against QEMU; after close they succeed', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const image = await Qcow2Image.openFile(path, { readOnly: false });
      const write = await qemuIo(path, 'write -P 7 0 4k');
      expect(write.exitCode).toBe(1);
      expect(write.stdout).toContain(`qemu-io: can't open device ${path}: Failed to get "write" lock`);
      expect(write.stdout).toContain(`Is another process using the image [${path}]?`);
      const info = await qemuImg('info', path);
      expect(info.exitCode).toBe(1);
      expect(info.stderr).toContain(`Could not open '${path}': Failed to get shared "write" lock`);
      expect((await qemuImg('info', '-U', path)).exitCode).toBe(0);
      expect((await qemuImg('snapshot', '-c', 'x', path)).stderr).toContain('Failed to get "write" lock');
      await image.close();
      expect((await qemuIo(path, 'write -P 7 0 4k')).exitCode).toBe(0);
      expect((await qemuImg('info', path)).exitCode).toBe(0);
    });
  });

  it('while the engine holds the image read-only, qemu-img info may open it and qemu-io may not write', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const image = await Qcow2Image.openFile(path, { readOnly: true });
      expect((await qemuImg('info', path)).exitCode).toBe(0);
      const write = await qemuIo(path, 'write -P 7 0 4k');
      expect(write.exitCode).toBe(1);
      expect(write.stdout).toContain('Failed to get "write" lock');
      await image.close();
    });
  });

  it('two opens in one process conflict like two processes (OFD locks); two readers coexist', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const first = await Qcow2Image.openFile(path, { readOnly: false });
      await expect(Qcow2Image.openFile(path, { readOnly: false })).rejects.toMatchObject({ code: 'locked', byte: 201 });
      await expect(Qcow2Image.openFile(path, { readOnly: true })).rejects.toMatchObject({ code: 'locked', byte: 101 });
      await first.close();
      const readers = [await Qcow2Image.openFile(path, { readOnly: true }), await Qcow2Image.openFile(path, { readOnly: true })];
      await expect(Qcow2Image.openFile(path, { readOnly: false })).rejects.toMatchObject({ code: 'locked', byte: 201 });
      for (const reader of readers) await reader.close();
      await (await Qcow2Image.openFile(path, { readOnly: false })).close();
    });
  });

  it('a holder that is SIGKILLed releases its locks: qemu-io and the engine open the image afterwards', async () => {
    await inTempDir(async (dir) => {
      const path = await makeImage(dir);
      const child = await holdInChild(path, 'rw');
      const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      try {
        expect(await lockedBytes(path)).toEqual(['100-101', '103-103', '201-201', '203-203']);
        expect((await qemuIo(path, 'write -P 7 0 4k')).stdout).toContain('Failed to get "write" lock');
        await expect(Qcow2Image.openFile(path, { readOnly: true })).rejects.toMatchObject({ code: 'locked' });
      } finally {
        child.kill('SIGKILL');
      }
      expect(await exited).toBe('SIGKILL');
      expect(await lockedBytes(path)).toEqual([]);
      expect((await qemuIo(path, 'write -P 7 0 4k')).exitCode).toBe(0);
      await (await Qcow2Image.openFile(path, { readOnly: false })).close();
    });
  });
});

/** The bytes a qemu-io started with `flags` holds on `path` while it is open. */
async function execQemuIoHeld(path: string, flags: readonly string[]): Promise<string[]> {
  const child = spawn('qemu-io', [...flags, '-f', 'qcow2', path], { stdio: ['pipe', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('qemu-io>')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`qemu-io exited ${code}`)));
  });
  const bytes = await lockedBytes(path);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.stdin.end('quit\n');
  await exited;
  return bytes;
}
