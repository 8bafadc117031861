// zstd compressed clusters (compression_type 1, incompatible bit 3): the frame
// walker, and images going both ways between the engine and QEMU 7.2.
import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryFile, Qcow2Image } from '../../impl/index.js';
import { zstdFrameExtent } from '../../impl/zstd-frame.js';
import { compressCluster } from '../../impl/compressed.js';
import { geometry } from '../../impl/geometry.js';
import { compressionTypeZstd } from '../../impl/limits.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { keepOpen } from './model-agreement.js';
import { pseudoRandomBytes, qemuCheck, qemuImg, qemuIo, qemuRaw, withTempDir } from './qemu-helpers.js';

/** One zstd frame of `cluster` through the engine's codec (the module must be instantiated once per process). */
async function zstdFrame(cluster: Uint8Array): Promise<Uint8Array> {
  const frame = await compressCluster(cluster, geometry(3, Math.log2(cluster.length), 4), compressionTypeZstd);
  if (frame === undefined) throw new Error('test data does not compress');
  return frame;
}

/** Text-like bytes that compress well but not to nothing. */
function nibbles(length: number, seed: number): Uint8Array {
  return pseudoRandomBytes(length, seed).map((b) => 0x60 | (b & 0x0f));
}

describe('zstd frame extent', () => {
  it('measures a frame followed by other bytes, and reads its content size', async () => {
    const frame = await zstdFrame(nibbles(4096, 1));
    const withTail = new Uint8Array(frame.length + 100).fill(0xab);
    withTail.set(frame);
    expect(zstdFrameExtent(withTail, 'test')).toEqual({ length: frame.length, contentSize: 4096 });
  });

  it('an RLE block counts one byte, a checksum four', () => {
    // magic, descriptor 0x24 (single segment, checksum, 1-byte content size), size 200,
    // one last RLE block of 200 bytes (header 0x641 + 200 << 3... ), byte 0x41, checksum
    const blockHeader = 1 | (1 << 1) | (200 << 3);
    const bytes = [0x28, 0xb5, 0x2f, 0xfd, 0x24, 200, blockHeader & 0xff, (blockHeader >> 8) & 0xff, blockHeader >> 16, 0x41, 1, 2, 3, 4, 9, 9];
    expect(zstdFrameExtent(new Uint8Array(bytes), 'test')).toEqual({ length: 14, contentSize: 200 });
  });

  it('a wrong magic, a reserved block type and a frame cut short are corrupt', async () => {
    const frame = await zstdFrame(nibbles(4096, 2));
    expect(() => zstdFrameExtent(new Uint8Array(16), 'cluster 7')).toThrow(/cluster 7: zstd frame magic/);
    expect(() => zstdFrameExtent(frame.subarray(0, frame.length - 1), 'x')).toThrow(/runs past/);
    const reserved = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x20, 16, 0x07, 0, 0]);
    expect(() => zstdFrameExtent(reserved, 'x')).toThrow(/reserved type/);
  });
});

describe('zstd images between the engine and QEMU', () => {
  it('reads and overwrites what qemu-img convert -c -o compression_type=zstd wrote', async () => {
    await withTempDir(async (d) => {
      const raw = join(d, 'in.raw');
      const path = join(d, 'z.qcow2');
      const data = new Uint8Array(512 * 1024);
      data.set(nibbles(200 * 1024, 3));
      data.set(pseudoRandomBytes(8192, 4), 300 * 1024); // stored normal
      await writeFile(raw, data);
      await qemuImg(['convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096,compression_type=zstd', raw, path]);
      const image = await Qcow2Image.openFile(path);
      expect((await image.info()).compressionType).toBe('zstd');
      expect(await image.read(0, data.length)).toEqual(data);
      await image.write(100, new Uint8Array(10).fill(1));
      data.fill(1, 100, 110);
      await image.writeCompressed(400 * 1024, nibbles(8192, 5));
      data.set(nibbles(8192, 5), 400 * 1024);
      await image.close();
      expect(await qemuCheck(path)).toMatchObject({ exitCode: 0, corruptions: 0, leaks: 0 });
      expect(await qemuRaw(path)).toEqual(data);
    });
  });

  it('QEMU reads, checks and adds to a zstd image the engine created and compressed', async () => {
    await withTempDir(async (d) => {
      const path = join(d, 'ours.qcow2');
      const image = await Qcow2Image.createFile(path, { size: 1024 * 1024, clusterSize: 512, compressionType: 'zstd' });
      const data = nibbles(64 * 512, 6);
      await image.writeCompressed(0, data);
      await image.close();
      expect(checkImage(bufferReader(new Uint8Array(await readFile(path)))).verdict).toBe('clean');
      expect(await qemuCheck(path)).toMatchObject({ exitCode: 0, corruptions: 0, leaks: 0 });
      const info = JSON.parse(await qemuImg(['info', '--output=json', path])) as { 'format-specific': { data: Record<string, unknown> } };
      expect(info['format-specific'].data['compression-type']).toBe('zstd');
      await qemuIo(path, ['write -c -P 0x66 0x10000 0x400', 'write -P 0x77 0 100']);
      const raw = await qemuRaw(path);
      expect(raw.subarray(100, data.length)).toEqual(data.subarray(100));
      const ours = await Qcow2Image.openFile(path, { readOnly: true });
      expect(await ours.read(0x10000, 0x400)).toEqual(new Uint8Array(0x400).fill(0x66));
      expect(await ours.read(0, 100)).toEqual(new Uint8Array(100).fill(0x77));
      await ours.close();
    });
  });

  it('a frame that declares more than a cluster is refused before it is decoded', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 64 * 1024, clusterSize: 4096, compressionType: 'zstd' });
    await image.writeCompressed(0, nibbles(4096, 7));
    await image.close();
    const bytes = file.bytes();
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const l2 = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00fffffffffffe00n);
    const host = Number(view.getBigUint64(l2) & ((1n << 58n) - 1n));
    await file.pwrite(host, await zstdFrame(new Uint8Array(1 << 20))); // 1 MiB of zeros: a tiny frame
    const reopened = await Qcow2Image.open(keepOpen(file));
    await expect(reopened.read(0, 4096)).rejects.toMatchObject({ code: 'corrupt', message: expect.stringMatching(/declares 1048576 bytes/) as unknown });
  });

  it('refuses zstd for compat 0.10, and a header whose bit 3 disagrees with the type', async () => {
    await expect(Qcow2Image.create(new MemoryFile(), { size: 65536, compat: '0.10', compressionType: 'zstd' })).rejects.toMatchObject({ code: 'invalid-argument' });
    const file = new MemoryFile();
    await (await Qcow2Image.create(keepOpen(file), { size: 65536, compressionType: 'zstd' })).close();
    await file.pwrite(79, new Uint8Array([0])); // clear incompatible bit 3
    await expect(Qcow2Image.open(keepOpen(file))).rejects.toMatchObject({ code: 'format' });
  });
});
