// Compressed writes by the engine (write -c): whole clusters, QEMU's byte
// packing (several streams per host cluster, streams straddling two), the
// refusals, incompressible clusters stored normal, bounded typed errors on
// damaged streams, and QEMU reading and overwriting what we wrote.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MemoryFile, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { bufferReader, checkImage, decodeImage } from '../../model/index.js';
import { keepOpen } from './model-agreement.js';
import { pseudoRandomBytes, qemuCheck, qemuIo, qemuRaw, withTempDir } from './qemu-helpers.js';

/** Bytes with 4 bits of entropy each: they compress to about half (like the generators' seeded compressed writes). */
function nibbles(length: number, seed: number): Uint8Array {
  return pseudoRandomBytes(length, seed).map((b) => 0x50 | (b & 0x0f));
}

async function fresh(clusterSize: number, size: number, refcountBits = 16): Promise<{ file: MemoryFile; image: Qcow2Image }> {
  const file = new MemoryFile();
  return { file, image: await Qcow2Image.create(keepOpen(file), { size, clusterSize, refcountBits }) };
}

/** Compressed streams of the flushed image: [host byte offset, byte length] per guest cluster. */
async function streams(file: MemoryFile, image: Qcow2Image): Promise<[number, number][]> {
  await image.flush();
  const decoded = decodeImage(bufferReader(file.bytes()));
  const out: [number, number][] = [];
  for (const table of decoded.l2Tables.values()) for (const e of table) if (e.kind === 'compressed') out.push([e.host!, e.length!]);
  return out;
}

function clean(file: MemoryFile): string {
  const report = checkImage(bufferReader(file.bytes()));
  return `${report.verdict} ${report.messages.slice(0, 3).join('; ')}`;
}

describe('compressed writes', () => {
  it('packs the streams of one request into one host cluster and reads them back', async () => {
    const { file, image } = await fresh(4096, 64 * 1024);
    const data = new Uint8Array(4 * 4096).fill(0x11);
    await image.writeCompressed(0, data);
    const found = await streams(file, image);
    expect(found).toHaveLength(4);
    expect(new Set(found.map(([host]) => Math.floor(host / 4096))).size).toBe(1);
    expect(await image.read(0, data.length)).toEqual(data);
    expect(clean(file)).toBe('clean ');
  });

  it('lets a stream straddle two host clusters when the next one is free, and counts both', async () => {
    const { file, image } = await fresh(512, 64 * 1024);
    const data = nibbles(8 * 512, 7);
    await image.writeCompressed(0, data);
    await image.writeCompressed(8 * 512, nibbles(8 * 512, 8));
    const found = await streams(file, image);
    const straddling = found.filter(([host, length]) => Math.floor(host / 512) !== Math.floor((host + length - 1) / 512));
    expect(straddling.length).toBeGreaterThan(0);
    expect(await image.read(0, data.length)).toEqual(data);
    expect(clean(file)).toBe('clean ');
  });

  it('refuses a cluster that has a host offset and still writes the others', async () => {
    const { file, image } = await fresh(4096, 64 * 1024);
    await image.write(4096, new Uint8Array(4096).fill(2));
    const error = await image.writeCompressed(0, new Uint8Array(3 * 4096).fill(1)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Qcow2Error);
    expect((error as Qcow2Error).code).toBe('compressed-overwrite');
    const bytes = await image.read(0, 3 * 4096);
    expect([bytes[0], bytes[4096], bytes[8192]]).toEqual([1, 2, 1]);
    expect(await streams(file, image)).toHaveLength(2);
    expect(clean(file)).toBe('clean ');
  });

  it('refuses ranges that are not whole clusters, except up to the end of the disk', async () => {
    const { file, image } = await fresh(4096, 4096 * 4 + 512);
    for (const [offset, length] of [[512, 4096], [0, 100], [0, 4096 + 512]]) {
      await expect(image.writeCompressed(offset!, new Uint8Array(length!))).rejects.toMatchObject({ code: 'invalid-argument' });
    }
    await image.writeCompressed(4 * 4096, new Uint8Array(512).fill(9));
    expect(await image.read(4 * 4096, 512)).toEqual(new Uint8Array(512).fill(9));
    expect(await streams(file, image)).toHaveLength(1);
  });

  it('stores a cluster that does not compress as a normal cluster, even over data', async () => {
    const { file, image } = await fresh(4096, 64 * 1024);
    await image.write(0, new Uint8Array(4096).fill(3));
    const data = pseudoRandomBytes(4096, 5);
    await image.writeCompressed(0, data);
    expect(await streams(file, image)).toHaveLength(0);
    expect(await image.read(0, 4096)).toEqual(data);
    expect(clean(file)).toBe('clean ');
  });

  it('never packs into a host cluster whose streams were freed and which was then reused', async () => {
    const { file, image } = await fresh(512, 0x576600);
    await image.writeCompressed(0x576400, new Uint8Array(512));
    await image.discard(0x576400, 512);
    await image.flush();
    await image.writeCompressed(0, new Uint8Array(1024));
    expect(await streams(file, image)).toHaveLength(2);
    expect(clean(file)).toBe('clean ');
  });
});

describe('damaged compressed streams are typed errors on read', () => {
  /** An image whose only stream is at guest cluster 0; returns its L2 entry's file offset and the stream's host offset. */
  async function withOneStream(): Promise<{ file: MemoryFile; entryAt: number; host: number }> {
    const { file, image } = await fresh(4096, 64 * 1024);
    await image.writeCompressed(0, new Uint8Array(4096).fill(4));
    const [[host]] = (await streams(file, image)) as [[number, number]];
    await image.close();
    const view = new DataView(file.bytes().buffer, file.bytes().byteOffset);
    const l2 = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00fffffffffffe00n);
    return { file, entryAt: l2, host };
  }

  async function readError(file: MemoryFile): Promise<unknown> {
    const image = await Qcow2Image.open(keepOpen(file));
    return image.read(0, 4096).catch((e: unknown) => e);
  }

  it('a stream that does not inflate', async () => {
    const { file, host } = await withOneStream();
    await file.pwrite(host, new Uint8Array(16).fill(0xff));
    expect(await readError(file)).toMatchObject({ code: 'corrupt' });
  });

  it('a stream that inflates to less than a cluster', async () => {
    const { file, host } = await withOneStream();
    await file.pwrite(host, new Uint8Array([0x03, 0x00])); // an empty final deflate block
    expect(await readError(file)).toMatchObject({ code: 'corrupt', message: expect.stringMatching(/inflates to 0 bytes/) as unknown });
  });

  it('a descriptor whose sectors run past the end of the file', async () => {
    const { file, entryAt } = await withOneStream();
    const x = 62n - (12n - 8n);
    const pastEnd = BigInt(file.bytes().length - 512);
    const entry = new Uint8Array(8);
    new DataView(entry.buffer).setBigUint64(0, (1n << 62n) | (15n << x) | pastEnd);
    await file.pwrite(entryAt, entry);
    expect(await readError(file)).toMatchObject({ code: 'corrupt', message: expect.stringMatching(/past the end of the file/) as unknown });
  });
});

describe('compressed clusters between the engine and QEMU', () => {
  it('QEMU reads, checks and overwrites what the engine compressed', async () => {
    await withTempDir(async (d) => {
      const path = join(d, 'ours.qcow2');
      const image = await Qcow2Image.createFile(path, { size: 1024 * 1024, clusterSize: 512 });
      const data = nibbles(64 * 512, 3);
      await image.writeCompressed(0, data);
      await image.close();
      expect(await qemuCheck(path)).toMatchObject({ exitCode: 0, corruptions: 0, leaks: 0 });
      expect((await qemuRaw(path)).subarray(0, data.length)).toEqual(data);
      await qemuIo(path, ['write -P 0x77 100 1000', 'write -z 4096 512', 'discard 8192 512', 'write -c -P 0x66 0x10000 0x400']);
      expect(await qemuCheck(path)).toMatchObject({ exitCode: 0, corruptions: 0, leaks: 0 });
      const raw = await qemuRaw(path);
      expect([raw[99], raw[100], raw[1099], raw[1100], raw[4096], raw[8192], raw[0x10000]]).toEqual([data[99], 0x77, 0x77, data[1100], 0, 0, 0x66]);
    });
  });
});
