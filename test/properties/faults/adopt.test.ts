// Adopting an image after a fault (model/crash.ts stateFromImage) keeps what
// the guest reads: per-subcluster state on extended-L2 images and compressed
// streams (inflated by the fault driver), in the active view and in snapshots.
import { describe, expect, it } from 'vitest';
import { bufferReader, decodeImage, initialState, read, stateFromImage, step, type ImageOptions, type ModelState, type Op } from '../../../model/index.js';
import { compressedStreams, createFaultDriver } from '../../../properties/faults/fault-driver.js';

const ops: Op[] = [
  { kind: 'write', offset: 0x1000, length: 0x800, pattern: 0x11 },
  { kind: 'writeCompressed', offset: 0x10000, length: 0x10000, pattern: 0x22 },
  { kind: 'writeZeroes', offset: 0x1800, length: 0x800, unmap: false },
  { kind: 'snapshotCreate', name: 's1' },
  { kind: 'write', offset: 0x10400, length: 0x400, pattern: 0x33 },
  { kind: 'discard', offset: 0x1000, length: 0x400 },
];

async function adopt(options: ImageOptions): Promise<{ expected: ModelState; adopted: ModelState }> {
  const driver = await createFaultDriver(options);
  let expected = initialState(options);
  try {
    for (const op of ops) {
      const result = step(expected, op);
      expect((await driver.apply(op)).ok, JSON.stringify(op)).toBe(result.outcome.ok);
      expected = result.state;
    }
    const bytes = await driver.imageBytes();
    const decoded = decodeImage(bufferReader(bytes));
    return { expected, adopted: stateFromImage(decoded, options, await compressedStreams(decoded, bytes)) };
  } finally {
    await driver.close();
  }
}

function views(s: ModelState): Uint8Array[] {
  const size = s.options.virtualSize;
  return [read(s, 0, size), ...s.snapshots.map((snap) => read({ ...s, active: snap.l1, options: { ...s.options, virtualSize: snap.diskSize } }, 0, snap.diskSize))];
}

describe('stateFromImage', () => {
  for (const [name, extendedL2, compressionType] of [
    ['extended L2, zstd', true, 'zstd'],
    ['standard L2, zlib', false, 'zlib'],
  ] as const) {
    it(`reads as the model did, active and snapshot views (${name})`, async () => {
      const options: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20, extendedL2, compressionType };
      const { expected, adopted } = await adopt(options);
      const [found, want] = [views(adopted), views(expected)];
      expect(found.length).toBe(2);
      found.forEach((view, i) => expect(Buffer.compare(view, want[i] ?? new Uint8Array()), `view ${i}`).toBe(0));
      const first = adopted.snapshots[0]?.l1[0]?.entries;
      // the compressed cluster stays compressed; a subcluster write stays per subcluster
      expect(first?.get(1)?.kind).toBe('compressed');
      if (extendedL2) expect(new Set((first?.get(0) as { subclusters?: readonly string[] } | undefined)?.subclusters)).toEqual(new Set(['allocated', 'zero', 'unallocated']));
    });
  }

  it('keeps the backing layer it is given: an overlay adopted after a fault reads through to it where it holds nothing', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 16 };
    const chainOps: Op[] = [
      { kind: 'write', offset: 0, length: 0x4000, pattern: 0xab },
      { kind: 'createOverlay', backingFormat: 'qcow2', options },
      // a partial cluster: the rest of it is copied from the backing file
      { kind: 'write', offset: 0x1200, length: 0x200, pattern: 0x5c },
    ];
    const driver = await createFaultDriver(options);
    let expected = initialState(options);
    try {
      for (const op of chainOps) {
        const result = step(expected, op);
        expect((await driver.apply(op)).ok, JSON.stringify(op)).toBe(true);
        expected = result.state;
      }
      const bytes = await driver.imageBytes();
      const decoded = decodeImage(bufferReader(bytes));
      const adopted = stateFromImage(decoded, options, await compressedStreams(decoded, bytes), expected.backing);
      expect(adopted.backing).toBe(expected.backing);
      expect(Buffer.compare(read(adopted, 0, options.virtualSize), read(expected, 0, options.virtualSize))).toBe(0);
      // without it, the overlay alone reads zeros where the backing file has data
      expect(read(stateFromImage(decoded, options, new Map()), 0, 0x200)).toEqual(new Uint8Array(0x200));
    } finally {
      await driver.close();
    }
  });

  it('refuses a compressed stream whose guest bytes it was not given', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 };
    const driver = await createFaultDriver(options);
    await driver.apply({ kind: 'writeCompressed', offset: 0, length: 0x10000, pattern: 0x22 });
    const decoded = decodeImage(bufferReader(await driver.imageBytes()));
    await driver.close();
    expect(() => stateFromImage(decoded, options, new Map())).toThrow(/compressed stream at host byte/);
  });
});
