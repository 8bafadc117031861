// Refcount corners the random sequences do not reach (docs/mutation.md lists the
// impl/refcount.ts mutants each test was written against): long runs placed
// first fit with their new refcount blocks right after them, the refcount table
// growing when a run reaches past it, the fewest self-describing blocks of a new
// area and QEMU's table limit, eviction of
// dirty refcount blocks, dirty-image repair over several blocks or without one,
// the write and barrier cost of a flush, and the engine's own invariant checks.
import { describe, expect, it } from 'vitest';
import { AssertionError, MemoryFile, Qcow2Error, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { decodeHeader, encodeHeader } from '../../impl/format/header.js';
import { openState } from '../../impl/open.js';
import { flushMetadata } from '../../impl/flush.js';
import { reftableSizeBytesMax } from '../../impl/limits.js';
import { reftableGrowth } from '../../impl/refcount-area.js';
import { geometry } from '../../impl/geometry.js';
import type { ImageState } from '../../impl/state.js';
import { bufferReader, checkImage, decodeImage } from '../../model/index.js';
import { keepOpen } from './model-agreement.js';
import { IoLog } from './io-log.js';
import { firstDifference, pseudoRandomBytes } from './qemu-helpers.js';

const clock = () => ({ sec: 1_700_000_000, nsec: 0 });
const KiB = 1024;
/** 512-byte clusters with 64-bit refcounts: a refcount block covers only R = 64 clusters. */
const small = { clusterSize: 512, refcountBits: 64 } as const;
const R = 64;
const incompatDirty = 1n;

async function engineState(file: BlockFile): Promise<ImageState> {
  return openState(file, { readOnly: false, clock });
}

async function freshImage(size: number, options: { lazyRefcounts?: boolean } = {}): Promise<MemoryFile> {
  const file = new MemoryFile();
  await (await Qcow2Image.create(keepOpen(file), { size, ...small, ...options })).close();
  return file;
}

/** Refcount-table entries in use (the index just past the last refcount block). */
function blocksInUse(bytes: Uint8Array): number {
  const header = decodeHeader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  let k = (header.refcountTableClusters * 512) / 8;
  while (k > 0 && view.getBigUint64(header.refcountTableOffset + (k - 1) * 8) === 0n) k--;
  return k;
}

/** The first cluster with a zero count. */
async function firstFreeCluster(s: ImageState): Promise<number> {
  let c = 0;
  while ((await s.refcounts.logical(c)) !== 0) c++;
  return c;
}

describe('a run of R clusters or more goes first fit, its new refcount blocks right after it', () => {
  for (const count of [R, 2 * (R - 1), 2 * (R - 1) + 1, 3 * R]) {
    it(`${count} clusters: at the first free cluster, no range skipped (QEMU alloc_refcount_block)`, async () => {
      const file = await freshImage(64 * KiB);
      const s = await engineState(keepOpen(file));
      const firstFree = await firstFreeCluster(s);
      const offset = await s.refcounts.allocate(count);
      expect(offset).toBe(firstFree * 512);
      // The check ignores counts past the end of the file, as qemu-img does.
      await s.file.pwrite(offset, new Uint8Array(count * 512));
      await flushMetadata(s);
      const bytes = file.bytes();
      const report = checkImage(bufferReader(bytes));
      expect(report.corruptions, report.messages.join('\n')).toBe(0);
      expect(report.leaks).toBe(count); // allocated, never referenced
      // Every new block lies past the run, and the file holds nothing else:
      // the run, the blocks, and one block per range the file reaches.
      const blocks = blocksInUse(bytes);
      const view = new DataView(bytes.buffer, bytes.byteOffset);
      const header = decodeHeader(bytes);
      for (let i = 1; i < blocks; i++) {
        expect(Number(view.getBigUint64(header.refcountTableOffset + i * 8))).toBeGreaterThanOrEqual(offset + count * 512);
      }
      const fileClusters = Math.ceil(bytes.length / 512);
      expect(fileClusters).toBe(firstFree + count + blocks - 1);
      expect(blocks).toBe(Math.ceil(fileClusters / R));
    });
  }

  it('grows the refcount table when a run reaches past it, then places the run', async () => {
    const file = await freshImage(64 * KiB);
    const before = decodeHeader(file.bytes());
    const entries = (before.refcountTableClusters * 512) / 8;
    const count = entries * R; // reaches past what the table can describe
    const s = await engineState(keepOpen(file));
    const offset = await s.refcounts.allocate(count);
    await s.file.pwrite(offset, new Uint8Array(count * 512));
    await flushMetadata(s);
    const after = decodeHeader(file.bytes());
    expect(after.refcountTableClusters).toBeGreaterThan(before.refcountTableClusters);
    expect(after.refcountTableOffset).not.toBe(before.refcountTableOffset);
    const report = checkImage(bufferReader(file.bytes()));
    expect(report.corruptions, report.messages.join('\n')).toBe(0);
    expect(report.leaks).toBe(count);
    expect(offset).toBeGreaterThanOrEqual(after.refcountTableOffset + after.refcountTableClusters * 512);
  });

  it('a new refcount area holds the fewest self-describing blocks for the new table', () => {
    const g = geometry(3, 9, 6);
    // 64 entries per table cluster, 64 clusters per block: the area for index 64
    // of a 64-entry table is one block and a 2-cluster table (ceil(65 * 1.5 / 64) = 2).
    expect(reftableGrowth(g, 64, 64)).toEqual({ areaIndex: 64, blocksCount: 1, entriesCount: 128, tableClusters: 2 });
    expect(reftableGrowth(g, 64, 100)).toMatchObject({ areaIndex: 100, blocksCount: 1 });
    // A table of 64 * 63 entries needs more clusters than one block can count besides itself.
    expect(reftableGrowth(g, 64 * 63, 64 * 63).blocksCount).toBe(2);
  });

  it(`stops at QEMU's refcount table limit (${reftableSizeBytesMax / 8} entries) with a typed error`, () => {
    const g = geometry(3, 9, 6);
    const limit = reftableSizeBytesMax / 8;
    const error = (() => {
      try {
        reftableGrowth(g, limit, limit);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(Qcow2Error);
    expect((error as Qcow2Error).code).toBe('unsupported');
    expect((error as Qcow2Error).message).toMatch(new RegExp(`^refcount table would need \\d+ entries \\(limit ${limit}\\)$`));
    // At the boundary: the largest table that still grows gets at most the limit.
    const grows = (k: number) => {
      try {
        return reftableGrowth(g, k, k).entriesCount;
      } catch {
        return undefined;
      }
    };
    let largest = Math.floor(limit / 1.5) - 4096;
    expect(grows(largest)).toBeDefined();
    while (grows(largest + 1) !== undefined) largest++;
    expect(grows(largest)).toBeLessThanOrEqual(limit);
    expect(largest).toBeGreaterThan(limit / 1.5 - 4096);
  });
});

describe('first fit', () => {
  it('a freed hole of exactly the size asked for is taken', async () => {
    const file = await freshImage(64 * KiB);
    const s = await engineState(keepOpen(file));
    await s.refcounts.allocate(1);
    const hole = await s.refcounts.allocate(3);
    const after = await s.refcounts.allocate(1);
    expect(after).toBe(hole + 3 * 512);
    for (let c = 0; c < 3; c++) await s.refcounts.decrement(hole / 512 + c);
    await flushMetadata(s);
    expect(await s.refcounts.allocate(3)).toBe(hole);
  });

  it("a run that ends where a refcount block's range ends needs no new block", async () => {
    const file = await freshImage(64 * KiB);
    const s = await engineState(keepOpen(file));
    let firstFree = 0;
    while ((await s.refcounts.logical(firstFree)) !== 0) firstFree++;
    expect(firstFree).toBeLessThan(R);
    const k = blocksInUse(file.bytes());
    expect(k).toBe(1);
    expect(await s.refcounts.allocate(R - firstFree)).toBe(firstFree * 512);
    await flushMetadata(s);
    expect(blocksInUse(file.bytes())).toBe(1);
  });
});

describe('refcount blocks under a tiny cache', () => {
  it('a dirty block evicted in the middle of an operation reaches the file', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 256 * KiB, ...small }, { refcountCacheEntries: 2 });
    const data = pseudoRandomBytes(200 * KiB, 1);
    for (let at = 0; at + 5 * KiB <= data.length; at += 9 * KiB) await image.write(at, data.subarray(at, at + 5 * KiB));
    await image.close();
    const report = checkImage(bufferReader(file.bytes()));
    expect(report.verdict, report.messages.join('\n')).toBe('clean');
    const reopened = await Qcow2Image.open(keepOpen(file), { readOnly: true });
    for (let at = 0; at + 5 * KiB <= data.length; at += 9 * KiB) {
      expect(firstDifference(await reopened.read(at, 5 * KiB), data.subarray(at, at + 5 * KiB))).toBe(-1);
    }
    await reopened.close();
  });
});

/** Set the dirty bit of a lazy-refcounts image, as a crash before close leaves it. */
function markDirty(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const header = decodeHeader(out);
  out.set(encodeHeader({ ...header, incompatibleFeatures: header.incompatibleFeatures | incompatDirty }));
  return out;
}

describe('dirty-image repair', () => {
  it('rebuilds the counts in every refcount block, not only the first', async () => {
    const file = await freshImage(128 * KiB, { lazyRefcounts: true });
    const image = await Qcow2Image.open(keepOpen(file));
    await image.write(0, pseudoRandomBytes(100 * KiB, 2)); // 200 clusters: blocks 0 to 3
    await image.close();
    const crashed = markDirty(file.bytes());
    // Stale counts in the third block: zero (corruption) until repaired.
    const d = decodeImage(bufferReader(crashed));
    const third = new DataView(crashed.buffer).getBigUint64(Number(d.header.refcountTableOffset) + 2 * 8);
    expect(third).not.toBe(0n);
    crashed.fill(0, Number(third), Number(third) + 512);
    expect(checkImage(bufferReader(crashed)).corruptions).toBeGreaterThan(0);
    const repaired = new MemoryFile(crashed);
    await (await Qcow2Image.open(keepOpen(repaired))).close();
    const report = checkImage(bufferReader(repaired.bytes()));
    expect(report.verdict, report.messages.join('\n')).toBe('clean');
  });

  it('refuses, untouched, a reference to a cluster no refcount block covers', async () => {
    const file = await freshImage(128 * KiB, { lazyRefcounts: true });
    const image = await Qcow2Image.open(keepOpen(file));
    await image.write(0, pseudoRandomBytes(512, 3));
    await image.close();
    const bytes = file.bytes();
    const d = decodeImage(bufferReader(bytes));
    const l2Offset = d.active.l2Offsets.find((o) => o !== 0) ?? 0;
    expect(l2Offset).toBeGreaterThan(0);
    const far = 5 * R; // range 5 has no refcount block
    const crafted = new Uint8Array(Math.max(bytes.length, (far + 1) * 512));
    crafted.set(markDirty(bytes));
    new DataView(crafted.buffer).setBigUint64(l2Offset, BigInt(far * 512) | (1n << 63n));
    const target = new MemoryFile(crafted);
    const error = await Qcow2Image.open(keepOpen(target)).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Qcow2Error);
    expect((error as Qcow2Error).code).toBe('corrupt');
    expect((error as Qcow2Error).message).toBe(`cannot repair refcounts: cluster ${far} has no refcount block`);
    expect(firstDifference(target.bytes(), crafted)).toBe(-1);
  });
});

describe('what a flush costs', () => {
  // Zeroing an allocated cluster without unmapping changes one L2 entry and no
  // refcount: the flush writes that L2 table behind one barrier, and flush()
  // ends with the file's own barrier. Nothing else is written.
  async function zeroOneClusterAndFlush(log: IoLog, image: Qcow2Image): Promise<void> {
    log.reset();
    await image.writeZeroes(0, 512);
    await image.flush();
  }

  it('on a fresh open: one L2 write, two barriers', async () => {
    const file = new MemoryFile();
    const setup = await Qcow2Image.create(keepOpen(file), { size: 64 * KiB, ...small });
    await setup.write(0, pseudoRandomBytes(4 * KiB, 4));
    await setup.close();
    const log = new IoLog(file);
    const image = await Qcow2Image.open(log);
    await zeroOneClusterAndFlush(log, image);
    expect(log.writes).toHaveLength(1);
    expect(log.barriers).toBe(2);
    await image.close();
  });

  it('after the refcount table moved and was written once: again one L2 write, two barriers', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 4096 * KiB, ...small });
    const log = new IoLog(file);
    await image.close();
    const reopened = await Qcow2Image.open(log);
    const before = decodeHeader(file.bytes()).refcountTableOffset;
    await reopened.write(0, pseudoRandomBytes(2100 * KiB, 5)); // 4200 clusters: more blocks than one table cluster holds
    await reopened.flush();
    expect(decodeHeader(file.bytes()).refcountTableOffset).not.toBe(before);
    await zeroOneClusterAndFlush(log, reopened);
    expect(log.writes).toHaveLength(1);
    expect(log.barriers).toBe(2);
    await reopened.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });

  it('new refcount blocks in place: the blocks, then one write for the changed table entries', async () => {
    const file = new MemoryFile();
    const setup = await Qcow2Image.create(keepOpen(file), { size: 256 * KiB, ...small });
    await setup.close();
    const log = new IoLog(file);
    const image = await Qcow2Image.open(log);
    const header = decodeHeader(file.bytes());
    const table = { offset: header.refcountTableOffset, length: header.refcountTableClusters * 512 };
    const inUse = blocksInUse(file.bytes());
    await image.write(0, pseudoRandomBytes(100 * KiB, 6)); // 200 data clusters: new blocks
    log.reset();
    await image.flush();
    expect(decodeHeader(file.bytes()).refcountTableOffset).toBe(table.offset);
    const added = blocksInUse(file.bytes()) - inUse;
    expect(added).toBeGreaterThan(1);
    const tableWrites = log.writes.filter((w) => w.offset >= table.offset && w.offset < table.offset + table.length);
    expect(tableWrites).toEqual([{ offset: table.offset + inUse * 8, length: added * 8 }]);
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });
});

describe('invariant checks', () => {
  it('refuse broken calls with an AssertionError', async () => {
    const file = new MemoryFile();
    const setup = await Qcow2Image.create(keepOpen(file), { size: 64 * KiB, clusterSize: 512, refcountBits: 1 });
    await setup.write(0, pseudoRandomBytes(512, 7));
    await setup.close();
    const s = await engineState(keepOpen(file));
    const dataCluster = (await s.map.entry(0)) as { offset: number };
    const cluster = dataCluster.offset / 512;
    const broken: [string, () => Promise<unknown>][] = [
      ['allocate(0)', () => s.refcounts.allocate(0)],
      ['allocate(1.5)', () => s.refcounts.allocate(1.5)],
      ['a 1-bit refcount past 1', () => s.refcounts.increment(cluster)],
      ['a reference dropped from a free cluster', () => s.refcounts.decrement(cluster + 50)],
      ['a reference counted where no refcount block exists', () => s.refcounts.increment(1000 * 4096)],
    ];
    for (const [what, call] of broken) await expect(call(), what).rejects.toBeInstanceOf(AssertionError);
    await s.refcounts.decrement(cluster);
    await expect(s.refcounts.increment(cluster), 'a reference gained while one waits to be dropped').rejects.toBeInstanceOf(AssertionError);
  });
});
