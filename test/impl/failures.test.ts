// Lazy refcounts and the dirty bit; I/O errors leave no trace; refused snapshot
// operations leave the image unchanged and without leaked clusters.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { bufferReader, checkImage } from '../../model/index.js';
import { MemoryFile, Qcow2Error, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { qemuCheck, withTempDir } from './qemu-helpers.js';
import { keepOpen } from './model-agreement.js';

const dirtyBit = (bytes: Uint8Array) => (new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(72) & 1n) === 1n;

async function qemuVerdict(bytes: Uint8Array) {
  return withTempDir(async (d) => {
    const path = join(d, 'img.qcow2');
    await writeFile(path, bytes);
    return qemuCheck(path);
  });
}

describe('lazy refcounts', () => {
  it('sets the dirty bit before the first L2 update and clears it on close', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, lazyRefcounts: true });
    expect(dirtyBit(file.bytes())).toBe(false);
    await image.write(0, new Uint8Array(4096).fill(1));
    expect(dirtyBit(file.bytes())).toBe(true);
    await image.flush();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
    await image.close();
    expect(dirtyBit(file.bytes())).toBe(false);
    expect(await qemuVerdict(file.bytes())).toMatchObject({ exitCode: 0, leaks: 0, corruptions: 0 });
  });

  it('a read-write open of a dirty image rebuilds stale refcounts', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, clusterSize: 4096, lazyRefcounts: true });
    await image.write(0, new Uint8Array(20000).fill(1));
    await image.flush(); // crash here: dirty bit stays set
    const crashed = file.bytes();
    const view = new DataView(crashed.buffer);
    // Stale refcounts: a cluster counted twice (a leak, what a crash leaves).
    const refblock = Number(new DataView(crashed.buffer).getBigUint64(Number(view.getBigUint64(48))));
    view.setUint16(refblock, 2); // the header cluster
    expect(checkImage(bufferReader(crashed)).verdict).toBe('leaks');
    const reopened = await Qcow2Image.open(new MemoryFile(crashed), { readOnly: true });
    expect((await reopened.info()).dirty).toBe(true);
    const repairedFile = new MemoryFile(crashed);
    const repaired = await Qcow2Image.open(repairedFile);
    expect((await repaired.info()).dirty).toBe(false);
    expect((await repaired.read(0, 20000)).every((b) => b === 1)).toBe(true);
    await repaired.close();
    expect(checkImage(bufferReader(repairedFile.bytes())).verdict).toBe('clean');
    expect(await qemuVerdict(repairedFile.bytes())).toMatchObject({ exitCode: 0, leaks: 0, corruptions: 0 });
  });
});

/** Fails the n-th pwrite (1-based) with an I/O error. */
class FailingFile implements BlockFile {
  private writes = 0;
  constructor(private readonly inner: MemoryFile, public failAt: number) {}
  pread(o: number, l: number) { return this.inner.pread(o, l); }
  async pwrite(o: number, d: Uint8Array) {
    if (++this.writes === this.failAt) throw new Qcow2Error('io', `injected write error at ${o}`);
    await this.inner.pwrite(o, d);
  }
  flush() { return this.inner.flush(); }
  truncate(l: number) { return this.inner.truncate(l); }
  length() { return this.inner.length(); }
  async close() {}
}

describe('failures leave no trace', () => {
  it('a failed data write frees what it allocated', async () => {
    const mem = new MemoryFile();
    const setup = await Qcow2Image.create(mem, { size: 1 << 20, clusterSize: 4096 });
    await setup.write(0, new Uint8Array(4096).fill(3));
    await setup.close();
    const failing = new FailingFile(new MemoryFile(mem.bytes()), 1);
    const image = await Qcow2Image.open(failing);
    await expect(image.write(8192, new Uint8Array(3 * 4096).fill(9))).rejects.toMatchObject({ code: 'io' });
    await image.write(0, new Uint8Array(10).fill(4)); // in place, still works
    // The retry lands past the clusters the failed write took, so the file now
    // covers them: were they not freed, the check would count them as leaks (it
    // ignores refcounts past the end of the file, as qemu-img does).
    await image.write(8192, new Uint8Array(3 * 4096).fill(9));
    await image.close();
    const bytes = (failing as unknown as { inner: MemoryFile }).inner.bytes();
    const report = checkImage(bufferReader(bytes));
    expect(report.verdict, report.messages.join('; ')).toBe('clean');
    expect(await qemuVerdict(bytes)).toMatchObject({ exitCode: 0, leaks: 0, corruptions: 0 });
  });

  it('refcount overflow on snapshot create and revert changes nothing', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, clusterSize: 4096, refcountBits: 2 });
    await image.write(0, new Uint8Array(8192).fill(1));
    await image.snapshots.create('a');
    await image.snapshots.create('b');
    await image.flush();
    const before = file.bytes();
    await expect(image.snapshots.create('c')).rejects.toMatchObject({ code: 'refcount-overflow' });
    await image.flush();
    expect(Buffer.compare(file.bytes(), before)).toBe(0);
    await image.snapshots.delete('b');
    await image.write(0, new Uint8Array(10).fill(2));
    await image.snapshots.create('c'); // data cluster 1 now: active + a + c = 3
    await image.close();
    expect(await qemuVerdict(file.bytes())).toMatchObject({ exitCode: 0, leaks: 0, corruptions: 0 });
  });
});

describe('metadata overlap', () => {
  it('a data write through an L2 entry that points at metadata is refused, nothing written', async () => {
    const mem = new MemoryFile();
    const setup = await Qcow2Image.create(mem, { size: 1 << 20, clusterSize: 4096 });
    await setup.write(0, new Uint8Array(4096).fill(1));
    await setup.close();
    const bytes = mem.bytes();
    const view = new DataView(bytes.buffer);
    const l1 = Number(view.getBigUint64(40));
    const l2 = Number(view.getBigUint64(l1) & 0x00fffffffffffe00n);
    const refblock = view.getBigUint64(Number(view.getBigUint64(48)));
    // (An entry cannot point at the header: offset 0 means unallocated.)
    for (const [name, target] of [['refcount table', view.getBigUint64(48)], ['refcount block', refblock], ['L1', BigInt(l1)]] as const) {
      view.setBigUint64(l2, target | (1n << 63n)); // normal, COPIED: would be written in place
      const file = new MemoryFile(bytes);
      const image = await Qcow2Image.open(file);
      await expect(image.write(0, new Uint8Array(512).fill(9)), name).rejects.toMatchObject({ code: 'corrupt' });
      expect(Buffer.compare(file.bytes(), bytes), name).toBe(0);
    }
  });
});
