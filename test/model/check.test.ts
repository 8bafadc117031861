import { describe, expect, it } from 'vitest';
import { bufferReader, checkImage, checkReportJson, type ImageOptions, type Op } from '../../model/index.js';
import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { imageBytes, join, qemuApply, qemuCheckJson, qemuCreate, withTempDir } from './qemu.js';

async function qemuCheck(file: string) {
  const r = await execa('qemu-img', ['check', '--output=json', file], { reject: false });
  const verdict = ({ 0: 'clean', 2: 'corrupt', 3: 'leaks' } as Record<number, string>)[r.exitCode ?? -1] ?? 'cannot-check';
  return { verdict, json: r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

const ops: Op[] = [
  { kind: 'write', offset: 0, length: 5000, pattern: 0x11 },
  { kind: 'write', offset: 300_000, length: 70_000, pattern: 0x22 },
  { kind: 'snapshotCreate', name: 's1' },
  { kind: 'write', offset: 1000, length: 10, pattern: 0x33 },
  { kind: 'writeZeroes', offset: 300_000, length: 8192, unmap: false },
  { kind: 'snapshotCreate', name: 's2' },
  { kind: 'discard', offset: 0, length: 4096 },
];

/** Our checker and qemu-img check agree on a QEMU-made image: same JSON members. */
async function sameAsQemu(options: ImageOptions, script: readonly Op[]) {
  await withTempDir(async (d) => {
    const file = join(d, 'img.qcow2');
    await qemuCreate(file, options);
    await qemuApply(file, script);
    const qemu = await qemuCheckJson(file);
    const ours = checkImage(bufferReader(await imageBytes(file)));
    expect(ours.messages).toEqual([]);
    expect(checkReportJson(ours, 'img.qcow2')).toEqual({ ...qemu.json, filename: 'img.qcow2' });
    expect(qemu.exitCode).toBe(0);
    expect(ours.verdict).toBe('clean');
  });
}

describe('checkImage on clean QEMU images', () => {
  it.each([
    { version: 3, clusterBits: 16, refcountBits: 16 },
    { version: 3, clusterBits: 9, refcountBits: 1 },
    { version: 3, clusterBits: 12, refcountBits: 64 },
    { version: 2, clusterBits: 10, refcountBits: 16 },
  ] as const)('v$version, 2^$clusterBits clusters, $refcountBits-bit refcounts: same verdict and numbers as qemu-img check', async (g) => {
    const script = g.refcountBits === 1 ? ops.filter((o) => o.kind !== 'snapshotCreate') : ops;
    await sameAsQemu({ ...g, lazyRefcounts: false, virtualSize: 1024 * 1024 }, script);
  });

  it('a fresh 1 GiB image: image end 262144, 16384 clusters', async () => {
    await sameAsQemu({ version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1024 ** 3 }, []);
  });
});

describe('checkImage on damaged images', () => {
  async function damaged(poke: (b: Uint8Array, dv: DataView) => void) {
    return withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1024 * 1024 });
      await qemuApply(file, [{ kind: 'write', offset: 0, length: 4096, pattern: 1 }]);
      const bytes = await imageBytes(file);
      poke(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      await writeFile(file, bytes);
      const qemu = await qemuCheck(file);
      const ours = checkImage(bufferReader(bytes));
      // Same class and counts as qemu-img check (exit 1 prints no JSON when the image cannot be opened).
      expect({ verdict: ours.verdict, ...(ours.failure ? {} : checkReportJson(ours, 'x')) }).toEqual({ verdict: qemu.verdict, ...(qemu.json ? { ...qemu.json, filename: 'x' } : {}) });
      return ours;
    });
  }
  // Layout of a fresh 64 KiB-cluster image after one write: reftable 0x10000,
  // refblock 0x20000, L1 0x30000, L2 0x40000, data 0x50000.
  it('counts a leak when a refcount is too high', async () => {
    const r = await damaged((_b, dv) => dv.setUint16(0x20000 + 2 * 5, 2));
    expect(r).toMatchObject({ verdict: 'corrupt', leaks: 1 }); // COPIED now wrong too
  });
  it('counts a free cluster still in use as a corruption', async () => {
    const r = await damaged((_b, dv) => dv.setUint16(0x20000 + 2 * 5, 0));
    expect(r).toMatchObject({ verdict: 'corrupt', leaks: 0 });
    expect(r.messages).toContain('ERROR cluster 5 refcount=0 reference=1');
  });
  it('cannot check an image with an unknown incompatible feature', async () => {
    const r = await damaged((_b, dv) => dv.setUint32(76, 0x20));
    expect(r).toMatchObject({ verdict: 'cannot-check', checkErrors: 1 });
    expect(r.failure).toMatch(/incompatible_features/);
  });
  it('reports an unaligned data offset as a corruption', async () => {
    const r = await damaged((_b, dv) => dv.setUint32(0x40004, 0x50200));
    expect(r.verdict).toBe('corrupt');
    expect(r.messages.some((m) => m.includes('not properly aligned'))).toBe(true);
  });
});
