// The data path (impl/data-path.ts) where the random sequences look at content
// only (docs/mutation.md lists the mutants each test was written against): what
// a write costs in I/O (an in-place overwrite writes its bytes and no metadata;
// a fresh cluster past the end of the file needs no copy-on-write of zeros, one
// inside the file does), that a zero-alloc cluster is written in place as QEMU
// does, that contiguous clusters are read with one read, copy-on-write from a
// shared cluster followed by whole clusters, and the metadata overlap check at
// the exact edge of a table.
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { decodeHeader } from '../../impl/format/header.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { IoLog } from './io-log.js';
import { keepOpen } from './model-agreement.js';
import { firstDifference, pseudoRandomBytes } from './qemu-helpers.js';

const clock = () => ({ sec: 1_700_000_000, nsec: 0 });
const KiB = 1024;
const cs = 4 * KiB;
const dirtyBit = (bytes: Uint8Array) => (decodeHeader(bytes).incompatibleFeatures & 1n) === 1n;

/** An image prepared by `setup`, closed, and reopened on an I/O log. */
async function prepared(setup: (image: Qcow2Image) => Promise<void>, lazyRefcounts = false) {
  const file = new MemoryFile();
  const image = await Qcow2Image.create(keepOpen(file), { size: 1024 * KiB, clusterSize: cs, lazyRefcounts }, { clock });
  await setup(image);
  await image.close();
  const log = new IoLog(file);
  return { file, log, image: await Qcow2Image.open(log, { clock }) };
}

async function hostOffset(image: Qcow2Image, guest: number): Promise<number | undefined> {
  const entry = (await image.map()).find((e) => e.start <= guest && guest < e.start + e.length);
  return entry?.offset === undefined ? undefined : entry.offset + (guest - entry.start);
}

describe('what a write costs', () => {
  it('an in-place overwrite writes its bytes, no metadata, and leaves the dirty bit alone', async () => {
    const { file, log, image } = await prepared((i) => i.write(0, pseudoRandomBytes(2 * cs, 1)), true);
    const host = await hostOffset(image, 0);
    log.reset();
    await image.write(100, pseudoRandomBytes(10, 2));
    await image.write(cs - 5, pseudoRandomBytes(10, 3)); // across two allocated clusters
    expect(log.writes).toEqual([{ offset: (host ?? -1) + 100, length: 10 }, { offset: (host ?? -1) + cs - 5, length: 10 }]);
    expect(dirtyBit(file.bytes())).toBe(false);
    await image.flush();
    expect(log.writes).toHaveLength(2); // the flush had nothing to write
    await image.close();
  });

  const zeroViews: [string, (image: Qcow2Image) => Promise<void>][] = [
    ['unallocated', async () => {}],
    ['zero-plain', (i) => i.writeZeroes(0, cs, { unmap: true })],
    ['zero-alloc shared with a snapshot', async (i) => {
      await i.write(0, pseudoRandomBytes(cs, 4));
      await i.writeZeroes(0, cs);
      await i.snapshots.create('s');
    }],
  ];
  for (const [kind, setup] of zeroViews) {
    it(`a partial write into a fresh cluster at the end of the file (old view: ${kind}) writes just its bytes`, async () => {
      const { file, log, image } = await prepared(setup);
      const end = await file.length();
      log.reset();
      const piece = pseudoRandomBytes(100, 5);
      await image.write(1000, piece);
      const host = await hostOffset(image, 0);
      expect(host).toBeGreaterThanOrEqual(end); // fresh, past the old end of the file
      expect(log.writes[0]).toEqual({ offset: (host ?? -1) + 1000, length: 100 });
      const expected = new Uint8Array(cs);
      expected.set(piece, 1000);
      expect(firstDifference(await image.read(0, cs), expected)).toBe(-1);
      await image.close();
      expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
    });
  }

  it('a partial write into a freed cluster inside the file copies zeros over the stale bytes', async () => {
    const { file, log, image } = await prepared(async (i) => {
      await i.write(0, pseudoRandomBytes(3 * cs, 6));
      await i.discard(cs, cs); // frees a cluster in the middle of the file, stale bytes stay
    });
    log.reset();
    await image.write(2 * cs + 50, pseudoRandomBytes(1, 7)); // in place, unrelated: no allocation
    await image.write(10 * cs + 10, pseudoRandomBytes(20, 8));
    const host = await hostOffset(image, 10 * cs);
    expect(host).toBeLessThan(await file.length());
    expect(log.writes.find((w) => w.offset === host)).toEqual({ offset: host, length: cs });
    const expected = new Uint8Array(cs);
    expected.set(pseudoRandomBytes(20, 8), 10);
    expect(firstDifference(await image.read(10 * cs, cs), expected)).toBe(-1);
    await image.close();
  });
});

describe('where writes go', () => {
  it('a zero-alloc cluster is written in place, as QEMU does (its COPIED flag lets it)', async () => {
    const { image } = await prepared(async (i) => {
      await i.write(0, pseudoRandomBytes(2 * cs, 9));
      await i.writeZeroes(0, 2 * cs);
    });
    const before = await hostOffset(image, cs);
    await image.write(cs + 7, pseudoRandomBytes(3, 10));
    expect(await hostOffset(image, cs)).toBe(before);
    const expected = new Uint8Array(cs);
    expected.set(pseudoRandomBytes(3, 10), 7);
    expect(firstDifference(await image.read(cs, cs), expected)).toBe(-1);
    await image.close();
  });

  it('copy-on-write from shared clusters, then whole clusters, in one write', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1024 * KiB, clusterSize: cs }, { clock });
    const old = pseudoRandomBytes(6 * cs, 11);
    await image.write(0, old);
    await image.snapshots.create('old');
    const piece = pseudoRandomBytes(3 * cs + 200, 12);
    await image.write(cs - 100, piece); // partial, whole, whole, whole, partial
    const expected = new Uint8Array(8 * cs);
    expected.set(old);
    expected.set(piece, cs - 100);
    expect(firstDifference(await image.read(0, 8 * cs), expected)).toBe(-1);
    // The caller's buffer may be a view: here its offset in its ArrayBuffer equals
    // the offset in the first cluster, so the copied-on-write cluster and the next
    // piece look contiguous by offsets alone, though they live in different buffers.
    const backing = pseudoRandomBytes(300 + 2 * cs, 13);
    const view = backing.subarray(300);
    await image.snapshots.create('again');
    await image.write(4 * cs + 300, view);
    expected.set(view, 4 * cs + 300);
    expect(firstDifference(await image.read(0, 8 * cs), expected)).toBe(-1);
    await image.snapshots.revert('old');
    expect(firstDifference(await image.read(0, 6 * cs), old)).toBe(-1);
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });
});

describe('copy-on-write reads only what it keeps', () => {
  it('a whole-cluster overwrite of a shared cluster does not read the old data', async () => {
    const { log, image } = await prepared(async (i) => {
      await i.write(0, pseudoRandomBytes(2 * cs, 19));
      await i.snapshots.create('s');
    });
    const shared = await hostOffset(image, 0);
    log.reset();
    await image.write(0, pseudoRandomBytes(cs, 20));
    expect(log.reads.filter((r) => r.offset === shared)).toEqual([]);
    expect(await hostOffset(image, 0)).not.toBe(shared);
    await image.close();
  });
});

describe('reads', () => {
  it('contiguous clusters come back with one read, split only where the data is not', async () => {
    const { log, image } = await prepared(async (i) => {
      await i.write(0, pseudoRandomBytes(8 * cs, 13));
      await i.discard(4 * cs, cs);
    });
    await image.read(0, cs); // loads the L2 table
    log.reset();
    await image.read(100, 4 * cs - 200);
    expect(log.reads).toHaveLength(1);
    log.reset();
    const back = await image.read(0, 8 * cs);
    expect(log.reads).toHaveLength(2); // clusters 0-3, then 5-7: cluster 4 reads as zeros
    expect(back.subarray(4 * cs, 5 * cs).every((b) => b === 0)).toBe(true);
    await image.close();
  });
});

describe('the metadata overlap check', () => {
  it('a data cluster right before the active L1 table is written, not refused', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 64 * KiB, clusterSize: 512 }, { clock });
    await image.write(0, pseudoRandomBytes(512, 14));
    await image.resize(4096 * KiB); // the grown L1 goes right after the data cluster
    await image.flush();
    const host = await hostOffset(image, 0);
    expect(decodeHeader(file.bytes()).l1TableOffset).toBe((host ?? -1) + 512);
    await image.write(0, pseudoRandomBytes(512, 15));
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });

  it('a write through an entry pointing into metadata is refused with the structure named, nothing written', async () => {
    // 512-byte clusters with 64-bit refcounts: 2100 KiB of data outgrow the first
    // refcount table cluster, so the table moves and spans two clusters.
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 4096 * KiB, clusterSize: 512, refcountBits: 64 }, { clock });
    await image.write(0, pseudoRandomBytes(2100 * KiB, 16));
    await image.snapshots.create('s');
    await image.write(0, pseudoRandomBytes(512, 17)); // guest cluster 0 private again (COPIED)
    await image.close();
    const bytes = file.bytes();
    const header = decodeHeader(bytes);
    expect(header.refcountTableClusters).toBeGreaterThanOrEqual(2);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const l2 = Number(view.getBigUint64(header.l1TableOffset) & 0x00fffffffffffe00n);
    const targets: [string, number][] = [
      ['refcount structures', header.refcountTableOffset + 512],
      ['snapshot table', header.snapshotsOffset],
      ['active L1 table', header.l1TableOffset],
      ['active L1 table', header.l1TableOffset + 512], // its second cluster
    ];
    expect(header.l1Size * 8).toBeGreaterThan(512);
    for (const [region, target] of targets) {
      const crafted = bytes.slice();
      new DataView(crafted.buffer).setBigUint64(l2, BigInt(target) | (1n << 63n)); // normal, COPIED: in place
      const damaged = new MemoryFile(crafted);
      const opened = await Qcow2Image.open(keepOpen(damaged), { clock });
      const error = await opened.write(0, pseudoRandomBytes(512, 18)).then(() => undefined, (e: unknown) => e);
      expect(error, region).toBeInstanceOf(Qcow2Error);
      expect((error as Qcow2Error).code).toBe('corrupt');
      expect((error as Qcow2Error).message).toBe(`refusing a data write of 512 bytes at ${target}: it overlaps the ${region}`);
      expect(firstDifference(damaged.bytes(), crafted), region).toBe(-1);
    }
  });
});
