import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryFile, NodeFile, Qcow2Image, type BlockFile } from '../../../impl/index.js';
import { preadInto } from '../../../impl/io/block-file.js';
import { TrackedFile } from '../../../impl/io/tracked-file.js';
import { withTempDir } from '../qemu-helpers.js';

/** A BlockFile without the optional preadInto that logs every pwrite. */
class LoggingFile implements BlockFile {
  readonly writes: { offset: number; data: Uint8Array }[] = [];
  lengthCalls = 0;
  failWrites = false;
  constructor(private readonly inner: MemoryFile) {}
  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.pread(offset, length);
  }
  pwrite(offset: number, data: Uint8Array): Promise<void> {
    if (this.failWrites) return Promise.reject(new Error('injected write failure'));
    this.writes.push({ offset, data });
    return this.inner.pwrite(offset, data);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }
  length(): Promise<number> {
    this.lengthCalls++;
    return this.inner.length();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('BlockFile reads', () => {
  it('NodeFile: pread and preadInto read past EOF as zeros, whatever the target held', async () => {
    await withTempDir(async (d) => {
      const path = join(d, 'f');
      await writeFile(path, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
      const file = await NodeFile.open(path, { readOnly: true });
      expect([...(await file.pread(6, 8))]).toEqual([7, 8, 9, 10, 0, 0, 0, 0]);
      const read = await file.pread(0, 3);
      expect(read.buffer.byteLength).toBe(3); // owns its buffer: .buffer users see only these bytes
      const target = new Uint8Array(6).fill(0xee);
      await file.preadInto(8, target);
      expect([...target]).toEqual([9, 10, 0, 0, 0, 0]);
      await file.preadInto(100, target);
      expect([...target]).toEqual([0, 0, 0, 0, 0, 0]);
      await file.close();
    });
  });

  it('MemoryFile and the fallback for files without preadInto agree', async () => {
    const memory = new MemoryFile(Uint8Array.from([1, 2, 3, 4]));
    const viaMethod = new Uint8Array(6).fill(0xee);
    await memory.preadInto(2, viaMethod);
    const viaFallback = new Uint8Array(6).fill(0xee);
    await preadInto(new LoggingFile(memory), 2, viaFallback);
    expect([...viaMethod]).toEqual([3, 4, 0, 0, 0, 0]);
    expect([...viaFallback]).toEqual([3, 4, 0, 0, 0, 0]);
  });
});

describe('data path without copies', () => {
  it('whole clusters of one write reach the file as one pwrite of the caller\'s buffer', async () => {
    const file = new LoggingFile(new MemoryFile());
    const image = await Qcow2Image.create(file, { size: 1 << 20, clusterSize: 4096 });
    const data = new Uint8Array(5 * 4096).map((_, i) => (i * 7) & 0xff);
    file.writes.length = 0;
    await image.write(4096, data.subarray(4096)); // four whole clusters at guest 4096
    const dataWrites = file.writes.filter((w) => w.data.length >= 4096);
    expect(dataWrites).toHaveLength(1);
    expect(dataWrites[0]?.data.buffer).toBe(data.buffer);
    expect(dataWrites[0]?.data.length).toBe(4 * 4096);
    // Read back across data, an unallocated cluster and a partial cluster.
    await image.write(7 * 4096 + 100, Uint8Array.of(9));
    const back = await image.read(4096 - 10, 4 * 4096 + 10 + 3 * 4096 + 200);
    expect([...back.subarray(0, 10)]).toEqual(new Array(10).fill(0));
    expect(back.subarray(10, 10 + 4 * 4096)).toEqual(data.subarray(4096));
    const tail = back.subarray(10 + 4 * 4096);
    expect(tail.every((b, i) => b === (i === 2 * 4096 + 100 ? 9 : 0))).toBe(true);
    await image.close();
  });
});

describe('TrackedFile', () => {
  it('bounds where zeros start: raised by writes (failed ones too), set by truncate', async () => {
    const inner = new LoggingFile(new MemoryFile(new Uint8Array(100)));
    const file = new TrackedFile(inner, 100);
    expect(file.zerosFrom).toBe(100);
    await file.pwrite(200, new Uint8Array(10));
    expect(file.zerosFrom).toBe(210);
    await file.pwrite(0, new Uint8Array(5));
    expect(file.zerosFrom).toBe(210);
    inner.failWrites = true;
    await expect(file.pwrite(300, new Uint8Array(1))).rejects.toThrow('injected');
    expect(file.zerosFrom).toBe(301);
    await file.truncate(50);
    expect(file.zerosFrom).toBe(50);
    expect(await file.length()).toBe(50);
  });

  it('random partial writes into fresh clusters ask the file for its length no more', async () => {
    const file = new LoggingFile(new MemoryFile());
    const image = await Qcow2Image.create(file, { size: 64 << 20 });
    file.lengthCalls = 0;
    for (let i = 0; i < 10; i++) await image.write(((i * 7919) % 1000) * 65536 + 4096, new Uint8Array(4096).fill(i + 1));
    expect(file.lengthCalls).toBe(0);
    await image.close();
  });

  it('a freed cluster inside the file is copied-on-write when reused, never taken for zeros', async () => {
    const image = await Qcow2Image.create(new MemoryFile(), { size: 1 << 20, clusterSize: 4096 });
    await image.write(0, new Uint8Array(3 * 4096).fill(0xff));
    await image.discard(4096, 4096);
    await image.flush(); // the discarded host cluster is free now, its old bytes still in the file
    await image.write(10 * 4096 + 100, Uint8Array.of(7));
    const back = await image.read(10 * 4096, 4096);
    expect(back.every((b, i) => b === (i === 100 ? 7 : 0))).toBe(true);
    await image.close();
  });
});
