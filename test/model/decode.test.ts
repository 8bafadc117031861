import { describe, expect, it } from 'vitest';
import {
  abstractImage,
  bufferReader,
  decodeImage,
  DecodeError,
  equivalent,
  initialState,
  step,
  type ImageOptions,
  type ModelState,
  type Op,
} from '../../model/index.js';
import { imageBytes, join, qemuApply, qemuCreate, withTempDir } from './qemu.js';

const MiB = 1024 * 1024;

/** Runs ops on the model and on QEMU; checks outcomes agree and the image is equivalent to the model. */
async function agree(options: ImageOptions, ops: readonly Op[]): Promise<ModelState> {
  return withTempDir(async (d) => {
    const file = join(d, 'img.qcow2');
    await qemuCreate(file, options);
    const qemuOk = await qemuApply(file, ops);
    let state = initialState(options);
    ops.forEach((op, i) => {
      const r = step(state, op);
      expect(r.outcome.ok, `op ${i} ${JSON.stringify(op)}`).toBe(qemuOk[i]);
      state = r.state;
    });
    const image = abstractImage(decodeImage(bufferReader(await imageBytes(file))));
    const eq = equivalent(state, image);
    expect(eq.ok ? 'equivalent' : eq.message).toBe('equivalent');
    return state;
  });
}

const scenario: Op[] = [
  { kind: 'write', offset: 0, length: 3000, pattern: 0x11 },
  { kind: 'write', offset: 40_000, length: 700, pattern: 0x22 },
  { kind: 'snapshotCreate', name: 'one' },
  { kind: 'write', offset: 1000, length: 100, pattern: 0x33 },
  { kind: 'writeZeroes', offset: 40_960, length: 4096, unmap: false },
  { kind: 'discard', offset: 0, length: 1024 },
  { kind: 'snapshotCreate', name: 'two' },
  { kind: 'writeZeroes', offset: 2048, length: 1024, unmap: true },
  { kind: 'snapshotRevert', name: 'one' },
  { kind: 'write', offset: 60_000, length: 5000, pattern: 0x44 },
  { kind: 'snapshotDelete', name: 'two' },
  { kind: 'snapshotDelete', name: 'nope' },
  { kind: 'write', offset: 200_000, length: 1, pattern: 0x55 },
];

describe('decoder and equivalence against QEMU-written images', () => {
  it.each([
    { version: 3, clusterBits: 9, refcountBits: 16 },
    { version: 3, clusterBits: 10, refcountBits: 4 },
    { version: 3, clusterBits: 21, refcountBits: 8 },
    { version: 3, clusterBits: 12, refcountBits: 64 },
    { version: 2, clusterBits: 9, refcountBits: 16 },
    { version: 3, clusterBits: 16, refcountBits: 1 },
  ] as const)('v$version, 2^$clusterBits clusters, $refcountBits-bit refcounts', async ({ version, clusterBits, refcountBits }) => {
    await agree({ version, clusterBits, refcountBits, lazyRefcounts: false, virtualSize: MiB }, scenario);
  });

  it('refcount overflow: both refuse the revert; QEMU 7.2 leaks where the model changes nothing (known divergence)', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 10, refcountBits: 2, lazyRefcounts: false, virtualSize: MiB };
    const ops = scenario.slice(0, 9);
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, options);
      const qemuOk = await qemuApply(file, ops);
      let state = initialState(options);
      const outcomes = ops.map((op) => {
        const r = step(state, op);
        state = r.state;
        return r.outcome;
      });
      expect(qemuOk[8]).toBe(false);
      expect(outcomes[8]).toMatchObject({ ok: false, error: 'refcount-overflow' });
      const image = abstractImage(decodeImage(bufferReader(await imageBytes(file))));
      expect(equivalent(state, image)).toMatchObject({ ok: false, difference: { view: 'refcounts' } });
    });
  });

  it('resize grow and shrink (v3, 512 B clusters)', async () => {
    await agree({ version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 64 * 1024 }, [
      { kind: 'write', offset: 0, length: 64 * 1024, pattern: 0x66 },
      { kind: 'resize', size: 20 * 1024 },
      { kind: 'resize', size: 300 * 1024 },
      { kind: 'write', offset: 290 * 1024, length: 512, pattern: 0x77 },
      { kind: 'resize', size: 1000 },
    ]);
  });

  it('reports the first difference with view and guest cluster', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 8192 };
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, options);
      await qemuApply(file, [{ kind: 'write', offset: 1024, length: 512, pattern: 1 }]);
      const image = abstractImage(decodeImage(bufferReader(await imageBytes(file))));
      const model = step(initialState(options), { kind: 'write', offset: 1024, length: 512, pattern: 2 }).state;
      const eq = equivalent(model, image);
      expect(eq).toMatchObject({ ok: false, difference: { view: 'active', guestCluster: 2 } });
      expect(equivalent(initialState(options), image)).toMatchObject({ ok: false, difference: { view: 'active', guestCluster: 0, expected: 'L1 entry 0' } });
    });
  });

  it('rejects a bad header with a typed error naming field, value and limit', () => {
    const bytes = new Uint8Array(512);
    bytes.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3], 0);
    bytes[23] = 22; // cluster_bits
    const error = (() => {
      try {
        decodeImage(bufferReader(bytes));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(DecodeError);
    expect(error).toMatchObject({ field: 'cluster_bits', value: '22', limit: '9..21', offset: 20 });
  });
});

describe('decoder bounds', () => {
  it('refuses an L1 entry pointing past the end of the file before reading it', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 8192 };
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuCreate(file, options);
      await qemuApply(file, [{ kind: 'write', offset: 0, length: 512, pattern: 1 }]);
      const bytes = await imageBytes(file);
      const view = new DataView(bytes.buffer);
      const l1Offset = Number(view.getBigUint64(40));
      view.setBigUint64(l1Offset, (1n << 63n) | 0x7ffffe00n);
      expect(() => decodeImage(bufferReader(bytes))).toThrow(expect.objectContaining({ field: 'l1_table_offset entry 0 L2 offset', offset: l1Offset }));
    });
  });
});
