// Fresh refcount areas with more than one block. The data path allocates at most
// one refcount block's range at a time, so only long metadata allocations (an
// L1 table or its snapshot copy of R clusters or more) lay out an area of
// several self-describing blocks; no property sequence reaches that size.
// Written against surviving mutants of impl/refcount-area.ts (docs/mutation.md).
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../impl/assert.js';
import { geometry } from '../../impl/geometry.js';
import { areaBlocks } from '../../impl/refcount-area.js';
import { MemoryFile, Qcow2Image } from '../../impl/index.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { keepOpen } from './model-agreement.js';
import { pseudoRandomBytes } from './qemu-helpers.js';

describe('areaBlocks', () => {
  const g = geometry(3, 9, 6); // 512 B clusters, 64-bit refcounts: R = 64
  it('counts the blocks and the clusters after them, block by block', () => {
    const blocks = areaBlocks(g, 3, 2 * 64 + 6);
    expect(blocks).toHaveLength(3);
    const counts = blocks.map((b) => [...Array(64).keys()].map((i) => b.get(i)));
    expect(counts[0]).toEqual(new Array<number>(64).fill(1));
    expect(counts[1]).toEqual(new Array<number>(64).fill(1));
    expect(counts[2]).toEqual([...new Array<number>(6).fill(1), ...new Array<number>(58).fill(0)]);
    expect(areaBlocks(g, 1, 64)[0]?.get(63)).toBe(1); // exactly full
  });

  it('an area holds its own blocks and nothing past them', () => {
    expect(() => areaBlocks(g, 0, 0)).toThrow(AssertionError);
    expect(() => areaBlocks(g, 2, 1)).toThrow(AssertionError);
    expect(() => areaBlocks(g, 1, 65)).toThrow(AssertionError);
    expect(areaBlocks(g, 2, 2)).toHaveLength(2);
  });
});

describe('long metadata allocations get a multi-block area', () => {
  it('an L1 of 128 clusters and its snapshot copy: clean image, data intact', async () => {
    // 256 MiB with 512 B clusters: an L1 of 8192 entries, 128 clusters, R = 64
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 1 << 20, clusterSize: 512, refcountBits: 64 });
    const verdict = async () => {
      await image.flush();
      const report = checkImage(bufferReader(file.bytes()));
      return `${report.verdict} ${report.messages.slice(0, 3).join('; ')}`;
    };
    await image.write(0, pseudoRandomBytes(3000, 1));
    await image.resize(256 << 20);
    expect(await verdict()).toBe('clean ');
    await image.write((256 << 20) - 1024, pseudoRandomBytes(1024, 2));
    await image.snapshots.create('big');
    expect(await verdict()).toBe('clean ');
    await image.write(100, pseudoRandomBytes(600, 3));
    await image.snapshots.revert('big');
    expect(await verdict()).toBe('clean ');
    expect(await image.read(0, 3000)).toEqual(pseudoRandomBytes(3000, 1));
    expect(await image.read((256 << 20) - 1024, 1024)).toEqual(pseudoRandomBytes(1024, 2));
    await image.snapshots.delete('big');
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });
});
