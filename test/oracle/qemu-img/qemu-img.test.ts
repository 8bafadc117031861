import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir, type DirectoryResult } from 'tmp-promise';
import {
  QemuImgError,
  createConstraints,
  openQemuIo,
  qemuImgCheck,
  qemuImgCheckBytes,
  qemuImgCompare,
  qemuImgConvert,
  qemuImgCreate,
  qemuImgInfo,
  qemuImgMap,
  qemuImgReadRaw,
  qemuImgResize,
  qemuImgSnapshot,
  qemuImgSnapshotList,
} from '../../../oracle/index.js';

let tmp: DirectoryResult;
let counter = 0;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

const cs = 4096;
/** A fresh 1 MiB v3 image with 4 KiB clusters and 16-bit refcounts: header, reftable 0x1000, refblock 0x2000, L1 0x3000. */
async function image(): Promise<string> {
  const path = join(tmp.path, `img${counter++}.qcow2`);
  await qemuImgCreate(path, { size: 1 << 20, clusterSize: cs });
  return path;
}

async function pokeU16(path: string, offset: number, value: number): Promise<void> {
  const handle = await open(path, 'r+');
  const bytes = new Uint8Array([value >> 8, value & 0xff]);
  await handle.write(bytes, 0, 2, offset);
  await handle.close();
}

describe('qemuImgCheck', () => {
  it('reports a clean fresh image with its allocation figures', async () => {
    const result = await qemuImgCheck(await image());
    expect(result).toMatchObject({ verdict: 'clean', exitCode: 0, corruptions: 0, leaks: 0, checkErrors: 0 });
    expect(result.imageEndOffset).toBe(4 * cs);
    expect(result.totalClusters).toBe(256);
    expect(result.allocatedClusters).toBeUndefined(); // absent member = 0, not reported
  });

  it('reports the leak made by a refcount on an unreferenced cluster', async () => {
    const path = await image();
    const handle = await open(path, 'r+');
    await handle.truncate(5 * cs); // cluster 4 exists but nothing references it
    await handle.close();
    await pokeU16(path, 0x2000 + 4 * 2, 1);
    const result = await qemuImgCheck(path);
    expect(result).toMatchObject({ verdict: 'leaks', exitCode: 3, leaks: 1, corruptions: 0 });
    expect(result.messages.join('\n')).toMatch(/Leaked cluster 4 refcount=1 reference=0/);
    const repaired = await qemuImgCheck(path, { repair: 'leaks' });
    expect(repaired).toMatchObject({ verdict: 'clean', leaksFixed: 1 });
  });

  it('reports a refcount that is too low as a corruption', async () => {
    const path = await image();
    await pokeU16(path, 0x2000 + 3 * 2, 0); // the L1 cluster now looks free
    expect(await qemuImgCheck(path)).toMatchObject({ verdict: 'corrupt', exitCode: 2, corruptions: 1 });
  });

  it('says cannot-check for an image QEMU cannot open, unsupported for raw', async () => {
    const path = await image();
    const handle = await open(path, 'r+');
    await handle.write(new Uint8Array([0, 0, 0, 8]), 0, 4, 20); // cluster_bits = 8
    await handle.close();
    const result = await qemuImgCheck(path);
    expect(result).toMatchObject({ verdict: 'cannot-check', exitCode: 1, raw: undefined });
    expect(result.messages.join('\n')).toMatch(/Unsupported cluster size: 2\^8/);
    const raw = join(tmp.path, `raw${counter++}.img`);
    await writeFile(raw, new Uint8Array(4096));
    expect(await qemuImgCheck(raw, { format: 'raw' })).toMatchObject({ verdict: 'unsupported', exitCode: 63 });
    await expect(qemuImgCheck(join(tmp.path, 'missing.qcow2'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('treats a lock held by a qemu-io session as an error, not a verdict; -U reads through it', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    try {
      await expect(qemuImgCheck(path)).rejects.toMatchObject({ detail: expect.stringMatching(/lock/) });
      expect((await qemuImgCheck(path, { forceShare: true })).verdict).toBe('clean');
      expect((await qemuImgInfo(path, { forceShare: true })).virtualSize).toBe(1 << 20);
      expect(await qemuImgMap(path, { forceShare: true })).toHaveLength(1);
      expect(await qemuImgCompare(path, path, { forceShare: true })).toEqual({ identical: true });
    } finally {
      await session.close();
    }
  });

  it('judges bytes, keeping a failing image only where asked', async () => {
    const path = await image();
    const bytes = new Uint8Array(await readFile(path));
    const keep = join(tmp.path, 'kept');
    expect(await qemuImgCheckBytes(bytes, { keepOnFailure: keep })).not.toHaveProperty('keptPath');
    bytes[0x2000 + 3 * 2 + 1] = 0;
    const first = await qemuImgCheckBytes(bytes, { keepOnFailure: keep, name: 'bad.qcow2' });
    const second = await qemuImgCheckBytes(bytes, { keepOnFailure: keep, name: 'bad.qcow2' });
    expect(first).toMatchObject({ verdict: 'corrupt', keptPath: join(keep, 'bad.qcow2') });
    expect(second.keptPath).toBe(join(keep, '1-bad.qcow2'));
    expect(new Uint8Array(await readFile(join(keep, 'bad.qcow2')))).toEqual(bytes);
    expect((await readdir(keep)).sort()).toEqual(['1-bad.qcow2', 'bad.qcow2']);
  });
});

describe('qemuImgCreate and qemuImgInfo', () => {
  it('creates the geometry asked for, v2 and v3', async () => {
    const v3 = join(tmp.path, `c${counter++}.qcow2`);
    await qemuImgCreate(v3, createConstraints({ version: 3, clusterBits: 9, refcountBits: 2, lazyRefcounts: true, virtualSize: 3 * 512 }));
    expect(await qemuImgInfo(v3)).toMatchObject({
      format: 'qcow2',
      virtualSize: 1536,
      clusterSize: 512,
      qcow2: { compat: '1.1', refcountBits: 2, lazyRefcounts: true, corrupt: false },
      snapshots: [],
    });
    const v2 = join(tmp.path, `c${counter++}.qcow2`);
    await qemuImgCreate(v2, createConstraints({ version: 2, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 }));
    expect((await qemuImgInfo(v2)).qcow2).toMatchObject({ compat: '0.10', refcountBits: 16 });
    await expect(qemuImgCreate(v2, { size: 1 << 20, compat: '0.10', refcountBits: 8 })).rejects.toMatchObject({
      exitCode: 1,
      detail: expect.stringMatching(/refcount widths/),
    });
  });
});

describe('qemuImgMap, qemuImgCompare, qemuImgConvert', () => {
  it('maps data, zero and unallocated ranges', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    await session.writePattern(cs, 2 * cs, 9);
    await session.writeZeroes(4 * cs, cs, { unmap: true });
    await session.close();
    const map = await qemuImgMap(path);
    // present: allocated in this image; a zero-plain cluster (write -z -u) is present, unallocated ones are not.
    expect(map.map(({ start, length, present, data, zero }) => ({ start, length, present, data, zero }))).toEqual([
      { start: 0, length: cs, present: false, data: false, zero: true },
      { start: cs, length: 2 * cs, present: true, data: true, zero: false },
      { start: 3 * cs, length: cs, present: false, data: false, zero: true },
      { start: 4 * cs, length: cs, present: true, data: false, zero: true },
      { start: 5 * cs, length: (1 << 20) - 5 * cs, present: false, data: false, zero: true },
    ]);
    expect(map[1]?.offset).toBeGreaterThan(0);
  });

  it('finds the difference made at a known offset (to its 512-byte sector)', async () => {
    const a = await image();
    const b = await image();
    expect(await qemuImgCompare(a, b)).toEqual({ identical: true });
    const session = await openQemuIo(b);
    await session.writePattern(5000, 1, 7);
    await session.close();
    expect(await qemuImgCompare(a, b)).toMatchObject({ identical: false, firstDifferenceOffset: 4608 });
    await expect(qemuImgCompare(a, join(tmp.path, 'missing.qcow2'))).rejects.toBeInstanceOf(QemuImgError);
  });

  it('converts to raw with exactly the guest bytes, and to qcow2 with options', async () => {
    const path = await image();
    const session = await openQemuIo(path);
    const bytes = Uint8Array.from({ length: 3000 }, (_, i) => (i * 31) & 0xff);
    await session.write(70_000, bytes);
    await session.close();
    const raw = await qemuImgReadRaw(path);
    expect(raw.length).toBe(1 << 20);
    expect(raw.subarray(70_000, 73_000)).toEqual(bytes);
    expect(raw.subarray(0, 70_000).every((byte) => byte === 0)).toBe(true);
    const copy = join(tmp.path, `conv${counter++}.qcow2`);
    await qemuImgConvert(path, copy, { outputFormat: 'qcow2', options: { cluster_size: 512, compat: '0.10' } });
    expect(await qemuImgInfo(copy)).toMatchObject({ clusterSize: 512, qcow2: { compat: '0.10' } });
    expect(await qemuImgCompare(path, copy)).toEqual({ identical: true });
  });
});

describe('qemuImgSnapshot and qemuImgResize', () => {
  it('creates, lists, applies and deletes snapshots', async () => {
    const path = await image();
    let session = await openQemuIo(path);
    await session.writePattern(0, cs, 1);
    await session.close();
    await qemuImgSnapshot(path, 'create', 'before');
    session = await openQemuIo(path);
    await session.writePattern(0, cs, 2);
    await session.close();
    expect((await qemuImgSnapshotList(path)).map(({ id, name }) => ({ id, name }))).toEqual([{ id: '1', name: 'before' }]);
    await qemuImgSnapshot(path, 'apply', 'before');
    expect((await qemuImgReadRaw(path))[0]).toBe(1);
    await expect(qemuImgSnapshot(path, 'apply', 'nope')).rejects.toMatchObject({ exitCode: 1, errno: 'ENOENT' });
    await expect(qemuImgSnapshot(path, 'delete', 'nope')).rejects.toMatchObject({ detail: expect.stringMatching(/not found/) });
    await qemuImgSnapshot(path, 'delete', 'before');
    expect(await qemuImgSnapshotList(path)).toEqual([]);
    expect((await qemuImgCheck(path)).verdict).toBe('clean');
  });

  it('grows and shrinks, and reports refusals', async () => {
    const path = await image();
    await qemuImgResize(path, 3 << 20);
    expect((await qemuImgInfo(path)).virtualSize).toBe(3 << 20);
    await qemuImgResize(path, 512 * 1024);
    expect((await qemuImgInfo(path)).virtualSize).toBe(512 * 1024);
    const v2 = join(tmp.path, `v2${counter++}.qcow2`);
    await qemuImgCreate(v2, { size: 1 << 20, compat: '0.10' });
    await qemuImgSnapshot(v2, 'create', 's');
    await expect(qemuImgResize(v2, 2 << 20)).rejects.toMatchObject({ detail: expect.stringMatching(/v2 image which has snapshots/) });
  });
});
