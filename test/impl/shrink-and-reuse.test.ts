// Where the engine puts clusters, as far as QEMU 7.2 pins it down: a shrink
// gives back the file past the last counted cluster (qcow2_co_truncate
// truncates to qcow2_get_last_cluster + 1; `qemu-img resize --shrink` of a full
// 1 MiB image to 64 KiB leaves 86016 bytes with 4 KiB clusters), and freed
// clusters are found again by the next allocation (free_cluster_index goes back
// to the lowest freed cluster), so the file does not grow. Reuse before any
// flush is in crash-barriers.test.ts and test/cli/commands/space.test.ts.
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Image } from '../../impl/index.js';
import { bufferReader, checkImage, decodeImage } from '../../model/index.js';
import { keepOpen } from './model-agreement.js';
import { pseudoRandomBytes } from './qemu-helpers.js';

/** Clusters in the file and the highest one with a non-zero refcount. */
function layout(bytes: Uint8Array): { fileClusters: number; lastCounted: number } {
  const d = decodeImage(bufferReader(bytes));
  const cs = d.header.clusterSize;
  const fileClusters = Math.ceil(d.fileSize / cs);
  let lastCounted = -1;
  for (let c = 0; c < fileClusters; c++) if (d.refcounts.refcount(c) !== 0n) lastCounted = c;
  return { fileClusters, lastCounted };
}

const shapes = [
  { clusterSize: 4096, refcountBits: 16 },
  { clusterSize: 512, refcountBits: 1 },
  { clusterSize: 512, refcountBits: 64 },
];

describe('shrink gives the file back', () => {
  it('like qemu-img resize --shrink: a full 1 MiB image shrunk to 64 KiB is 86016 bytes (4 KiB clusters)', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, clusterSize: 4096 });
    await image.write(0, new Uint8Array(1 << 20).fill(1));
    await image.resize(64 * 1024);
    await image.close();
    expect(file.bytes().length).toBe(86016);
  });

  for (const shape of shapes) {
    it(`ends right after the last counted cluster (${shape.clusterSize} B clusters, ${shape.refcountBits}-bit refcounts)`, async () => {
      const file = new MemoryFile();
      const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, ...shape });
      await image.write(0, pseudoRandomBytes(200_000, 1));
      await image.write(900_000, pseudoRandomBytes(100_000, 2));
      await image.flush();
      const before = file.bytes().length;
      await image.resize(150_016); // not cluster aligned: the last kept cluster is partial
      await image.flush();
      const after = layout(file.bytes());
      expect(after.fileClusters).toBe(after.lastCounted + 1);
      expect(file.bytes().length).toBeLessThan(before);
      expect(file.bytes().length).toBe(after.fileClusters * shape.clusterSize);
      expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
      await image.close();
    });
  }

  it('keeps what a snapshot still holds', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, clusterSize: 512 });
    await image.write(800_000, pseudoRandomBytes(100_000, 3));
    await image.snapshots.create('keep');
    const before = file.bytes().length;
    await image.resize(64 * 1024);
    await image.flush();
    const after = layout(file.bytes());
    expect(after.fileClusters).toBe(after.lastCounted + 1);
    expect(file.bytes().length).toBeGreaterThanOrEqual(before - 512 * 4);
    await image.snapshots.revert('keep');
    expect(image.virtualSize).toBe(1 << 20);
    expect(await image.read(800_000, 100_000)).toEqual(pseudoRandomBytes(100_000, 3));
    await image.close();
  });
});

describe('freed clusters are found again', () => {
  for (const shape of shapes) {
    it(`a write after a flushed discard does not grow the file (${shape.clusterSize} B clusters, ${shape.refcountBits}-bit refcounts)`, async () => {
      const file = new MemoryFile();
      const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, ...shape });
      const n = 16 * shape.clusterSize;
      await image.write(0, pseudoRandomBytes(n, 4));
      await image.write(n, pseudoRandomBytes(shape.clusterSize, 5)); // something after the run
      await image.flush();
      const grown = file.bytes().length;
      await image.discard(0, n);
      await image.flush(); // the frees land here
      expect(file.bytes().length).toBe(grown);
      // one cluster at a time, then a run: both must fit into the hole
      await image.write(4 * n, pseudoRandomBytes(shape.clusterSize, 6));
      await image.write(2 * n, pseudoRandomBytes(n / 2, 7));
      await image.flush();
      expect(file.bytes().length).toBe(grown);
      expect(await image.read(2 * n, n / 2)).toEqual(pseudoRandomBytes(n / 2, 7));
      expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
      await image.close();
    });
  }
});
