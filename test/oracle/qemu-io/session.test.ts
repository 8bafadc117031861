import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir, type DirectoryResult } from 'tmp-promise';
import { QemuIoError, openQemuIo, qemuImgCreate, qemuImgInfo, qemuImgMap, qemuImgReadRaw } from '../../../oracle/index.js';

let tmp: DirectoryResult;
let counter = 0;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

/** A fresh 1 MiB image with 4 KiB clusters. */
async function image(): Promise<string> {
  const path = join(tmp.path, `img${counter++}.qcow2`);
  await qemuImgCreate(path, { size: 1 << 20, clusterSize: 4096 });
  return path;
}

/** Deterministic bytes that are not a constant fill. */
function noise(length: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length }, () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x >>> 24;
  });
}

describe('QemuIoSession', () => {
  it('reads back exactly the bytes written, arbitrary and constant, across clusters', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    const bytes = noise(10_000, 7);
    await session.write(3000, bytes);
    await session.writePattern(20_000, 100, 0xab);
    expect(await session.read(3000, 10_000)).toEqual(bytes);
    expect(await session.read(19_999, 102)).toEqual(Uint8Array.from({ length: 102 }, (_, i) => (i === 0 || i === 101 ? 0 : 0xab)));
    await session.close();
    // QEMU itself agrees after the session ends.
    expect((await qemuImgReadRaw(path)).subarray(3000, 13_000)).toEqual(bytes);
  });

  it('zeroes with and without unmap, discards, truncates', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    await session.writePattern(0, 4 * 4096, 1);
    await session.writeZeroes(0, 4096, { unmap: false });
    await session.writeZeroes(4096, 4096, { unmap: true });
    await session.discard(8192, 4096);
    await session.flush();
    expect(await session.read(0, 3 * 4096)).toEqual(new Uint8Array(3 * 4096));
    await session.truncate(2 << 20);
    await session.close();
    const map = await qemuImgMap(path);
    // zero-alloc keeps its host cluster (present zero), unmapped/discarded ones do not.
    expect(map[0]).toMatchObject({ start: 0, length: 4096, zero: true, data: false });
    expect(map[0]?.offset).toBeDefined();
    expect(map[1]).toMatchObject({ start: 4096, length: 8192, zero: true, data: false });
    expect(map[1]?.offset).toBeUndefined();
    expect(map[2]).toMatchObject({ start: 12_288, length: 4096, data: true });
    expect((await qemuImgInfo(path)).virtualSize).toBe(2 << 20);
  });

  it('gives typed errors and keeps working after them', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    const pastEnd = session.write(1 << 20, noise(512, 1));
    await expect(pastEnd).rejects.toBeInstanceOf(QemuIoError);
    await expect(pastEnd).rejects.toMatchObject({ errno: 'EIO', detail: 'write failed: Input/output error' });
    await expect(session.read((1 << 20) - 1, 2)).rejects.toMatchObject({ errno: 'EIO' });
    await expect(session.truncate(1000)).rejects.toMatchObject({ detail: expect.stringMatching(/multiple of 512/) });
    await session.writePattern(0, 512, 0x5a);
    expect((await session.read(0, 1))[0]).toBe(0x5a);
    await session.close();
    await session.close();
    await expect(session.flush()).rejects.toBeInstanceOf(QemuIoError);
  });

  it('refuses writes in a read-only session and images it cannot open', async () => {
    const path = await image();
    const session = await openQemuIo(path, { readOnly: true });
    await expect(session.writePattern(0, 512, 1)).rejects.toMatchObject({ detail: expect.stringMatching(/read-only/) });
    await session.close();
    await expect(openQemuIo(join(tmp.path, 'missing.qcow2'))).rejects.toMatchObject({
      errno: 'ENOENT',
      detail: expect.stringMatching(/can't open/),
    });
  });

  it('reports a qemu-io that dies mid-command, then refuses further commands', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    // qemu-io's sigraise kills the process itself, as a crash inside QEMU would.
    await expect(session.run('sigraise 9')).rejects.toMatchObject({ detail: expect.stringMatching(/signal SIGKILL/) });
    await expect(session.read(0, 512)).rejects.toMatchObject({ detail: expect.stringMatching(/not running/) });
    await session.close();
  });

  it('holds a request at a blkdebug break point, says so, and is killed from outside', async () => {
    const path = await image();
    const empty = join(tmp.path, `empty${counter++}.conf`);
    await writeFile(empty, '');
    const session = await openQemuIo(`blkdebug:${empty}:${path}`, { cache: 'writeback', unbufferedOutput: true });
    await session.breakAt('l2_update', 'held');
    // a write into a fresh cluster updates its L2 entry in the flush (cache writeback): held there
    const reached = await session.untilSuspended('held', async () => {
      await session.writePattern(0, 4096, 0x5a);
      await session.flush();
    });
    expect(reached).toBe('suspended');
    await session.kill();
    await expect(session.read(0, 512)).rejects.toMatchObject({ detail: expect.stringMatching(/not running \(signal SIGKILL\)/) });
    await session.close();
  });

  it('runs to the end when the break point is not reached', async () => {
    const path = await image();
    const empty = join(tmp.path, `empty${counter++}.conf`);
    await writeFile(empty, '');
    const session = await openQemuIo(`blkdebug:${empty}:${path}`, { cache: 'writeback', unbufferedOutput: true });
    // a 1 MiB disk's L1 table never grows
    await session.breakAt('l1_grow_alloc_table', 'held');
    const reached = await session.untilSuspended('held', async () => {
      await session.writePattern(0, 4096, 0x5a);
      await session.flush();
    });
    expect(reached).toBe('completed');
    expect(await session.read(0, 4)).toEqual(new Uint8Array(4).fill(0x5a));
    await session.kill();
    await session.close();
  });

  it('removes its scratch files on close', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    await session.write(0, noise(600, 3));
    // White-box: the scratch dir is private state; it must exist while open and vanish on close.
    const dirs = (session as unknown as { scratch: Promise<DirectoryResult> }).scratch;
    const scratchPath = (await dirs).path;
    await access(scratchPath);
    await session.close();
    await expect(access(scratchPath)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('runs a 50-operation sequence in one session (time printed, not asserted)', async () => {
    const path = await image();
    const started = performance.now();
    const session = await openQemuIo(path);
    const bytes = noise(5000, 11);
    for (let i = 0; i < 50; i++) {
      if (i % 5 === 0) await session.write(i * 4096, bytes);
      else if (i % 5 === 1) await session.writeZeroes(i * 4096, 8192, { unmap: i % 2 === 0 });
      else if (i % 5 === 2) await session.discard(i * 4096, 4096);
      else if (i % 5 === 3) await session.flush();
      else expect(await session.read(0, 4096)).toEqual(bytes.subarray(0, 4096));
    }
    await session.close();
    console.log(`qemu-io session: open + 50 operations + close in ${(performance.now() - started).toFixed(1)} ms`);
  });
});
