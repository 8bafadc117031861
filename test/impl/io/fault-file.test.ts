// The fault-injecting file: durable bytes apart from pending writes, crash
// states that are reproducible and lie between "nothing landed" and
// "everything landed" sector by sector, and I/O errors at the Nth access.
import { describe, expect, it } from 'vitest';
import { FaultFile, crashSectorBytes, MemoryFile, Qcow2Image } from '../../../impl/index.js';
import { bufferReader, checkImage } from '../../../model/index.js';

const filled = (length: number, value: number) => new Uint8Array(length).fill(value);

describe('FaultFile', () => {
  it('keeps durable bytes apart from writes since the last flush', async () => {
    const file = new FaultFile(filled(1024, 1));
    await file.pwrite(0, filled(512, 2));
    expect((await file.pread(0, 4))[0]).toBe(2);
    expect(file.durableBytes()[0]).toBe(1);
    expect(file.pendingEntries).toHaveLength(1);
    await file.flush();
    expect(file.durableBytes()[0]).toBe(2);
    expect(file.pendingEntries).toHaveLength(0);
    expect(file.epoch).toBe(1);
    await file.truncate(512);
    expect(await file.length()).toBe(512);
    expect(file.durableBytes().length).toBe(1024);
  });

  it('a crash state is reproducible from its seed, and each sector holds old or newest bytes', async () => {
    const file = new FaultFile(filled(8 * crashSectorBytes, 0));
    for (let i = 0; i < 6; i++) await file.pwrite(i * 700, filled(900, 10 + i));
    const latest = file.bytes();
    const shapes = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const state = await file.crashState(seed);
      expect(Buffer.compare(state, await file.crashState(seed))).toBe(0);
      expect(state.length).toBeGreaterThanOrEqual(8 * crashSectorBytes);
      // every byte was written by one of the pending writes or is the old zero
      expect(state.every((b) => b === 0 || (b >= 10 && b <= 15))).toBe(true);
      shapes.add(Buffer.compare(state, latest) === 0 ? 'all' : state.every((b) => b === 0) ? 'none' : 'some');
    }
    expect([...shapes].sort()).toEqual(['all', 'none', 'some']);
  });

  it('an armed error fails the Nth access once, or every one until disarmed, and changes nothing', async () => {
    const file = new FaultFile(filled(1024, 1));
    file.arm({ access: 'write', nth: 2, errno: 'ENOSPC', persistent: false });
    await file.pwrite(0, filled(10, 2));
    await expect(file.pwrite(0, filled(10, 3))).rejects.toMatchObject({ code: 'io', message: expect.stringContaining('ENOSPC') });
    expect((await file.pread(0, 1))[0]).toBe(2);
    await file.pwrite(0, filled(10, 4));
    expect(file.disarm()).toBe(1);

    file.arm({ access: 'flush', nth: 1, errno: 'EIO', persistent: true });
    await expect(file.flush()).rejects.toMatchObject({ code: 'io' });
    await expect(file.flush()).rejects.toMatchObject({ code: 'io' });
    expect(file.durableBytes()[0]).toBe(1);
    expect(file.disarm()).toBe(2);
    await file.flush();
    expect(file.durableBytes()[0]).toBe(4);
  });

  it('faultsOff ignores every armed error', async () => {
    const file = new FaultFile(filled(16, 0), true);
    file.arm({ access: 'read', nth: 1, errno: 'EIO', persistent: true });
    await file.pread(0, 16);
    expect(file.disarm()).toBe(0);
  });

  it('under the engine: every crash state of a run is judged by the checker (no corruption)', async () => {
    const base = new MemoryFile();
    const setup = await Qcow2Image.create(base, { size: 1 << 20, clusterSize: 512, refcountBits: 16 });
    await setup.write(0, filled(20_000, 7));
    await setup.close();
    const file = new FaultFile(base.bytes());
    const image = await Qcow2Image.open(file);
    await image.write(100_000, filled(30_000, 8)); // new L2 tables and data
    await image.discard(0, 4096);
    await image.write(300_000, filled(5000, 9)); // reuses the discarded clusters (flushes first)
    expect(file.pendingEntries.length).toBeGreaterThan(0);
    for (let seed = 1; seed <= 64; seed++) {
      const report = checkImage(bufferReader(await file.crashState(seed)));
      expect(['clean', 'leaks'], report.messages.join('; ')).toContain(report.verdict);
    }
  });
});
