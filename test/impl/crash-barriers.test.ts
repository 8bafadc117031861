// Crash consistency with write reordering, judged by the model's checker (no
// QEMU, so it also runs against every mutant in npm run mutation). A disk may
// make the writes issued since the last flush durable in any order, so a crash
// between two barriers can leave any subset of them. For each epoch (the
// writes between two BlockFile.flush calls) on top of everything before it,
// the test judges every prefix, every single write alone and every epoch with
// one write missing: leaks are allowed, corruption is not. A missing barrier in
// impl/flush.ts, refcount.ts or cluster-map.ts merges two epochs, and the
// "later write alone" state (an L1 entry before its L2 table, a reftable entry
// before its block, a reference before its refcount) shows up as corruption.
// crash-ordering.test.ts checks issue order with qemu-img; this one barriers.
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { bufferReader, checkImage, checkWith } from '../../model/index.js';
import { pseudoRandomBytes } from './qemu-helpers.js';

type Entry = { kind: 'write'; offset: number; data: Uint8Array } | { kind: 'truncate'; length: number };

class BarrierLog implements BlockFile {
  /** Writes between two flushes, oldest epoch first; the last one is open. */
  readonly epochs: Entry[][] = [[]];
  constructor(private readonly inner: MemoryFile) {}
  private get open(): Entry[] {
    const e = this.epochs[this.epochs.length - 1];
    if (e === undefined) throw new Error('no open epoch');
    return e;
  }
  pread(offset: number, length: number) { return this.inner.pread(offset, length); }
  async pwrite(offset: number, data: Uint8Array) { this.open.push({ kind: 'write', offset, data: data.slice() }); await this.inner.pwrite(offset, data); }
  async flush() { if (this.open.length > 0) this.epochs.push([]); await this.inner.flush(); }
  async truncate(length: number) { this.open.push({ kind: 'truncate', length }); await this.inner.truncate(length); }
  length() { return this.inner.length(); }
  async close() {}
}

async function apply(base: Uint8Array, entries: readonly Entry[]): Promise<Uint8Array> {
  const file = new MemoryFile(base);
  for (const e of entries) {
    if (e.kind === 'write') await file.pwrite(e.offset, e.data);
    else await file.truncate(e.length);
  }
  return file.bytes();
}

/** Every crash state this test judges for one epoch, as the subset of its writes that landed. */
function crashSubsets(n: number): number[][] {
  const all = [...Array(n).keys()];
  const subsets: number[][] = [];
  for (let k = 1; k < n; k++) subsets.push(all.slice(0, k)); // issue-order prefixes
  for (let i = 0; i < n; i++) subsets.push([i]); // one write alone
  if (n > 2) for (let i = 0; i < n; i++) subsets.push(all.filter((j) => j !== i)); // one write lost
  return subsets;
}

/** A further judgement of one crash state: a message when it is wrong. */
type Inspect = (bytes: Uint8Array) => Promise<string | undefined>;

async function judge(
  base: Uint8Array,
  run: (image: Qcow2Image) => Promise<void>,
  inspect?: Inspect,
  copiedStale = false,
): Promise<{ epochs: number; states: number; bad: string[] }> {
  const log = new BarrierLog(new MemoryFile(base));
  const image = await Qcow2Image.open(log);
  await run(image);
  await image.close();
  const bad: string[] = [];
  let durable = base;
  let states = 0;
  for (const [e, epoch] of log.epochs.entries()) {
    for (const subset of crashSubsets(epoch.length)) {
      states++;
      const bytes = await apply(durable, subset.map((i) => epoch[i] as Entry));
      const details = checkWith(bufferReader(bytes), new Map());
      const report = details.report;
      const onlyStale = copiedStale && report.checkErrors === 0 && report.corruptions === details.copiedStale;
      if (report.verdict !== 'clean' && report.verdict !== 'leaks' && !onlyStale) {
        bad.push(`epoch ${e} writes [${subset.join(',')}] of ${epoch.length}: ${report.verdict}: ${report.messages.slice(0, 2).join('; ')}`);
      } else if (inspect !== undefined) {
        const wrong = await inspect(bytes);
        if (wrong !== undefined) bad.push(`epoch ${e} writes [${subset.join(',')}] of ${epoch.length}: ${wrong}`);
      }
    }
    durable = await apply(durable, epoch);
  }
  expect(checkImage(bufferReader(durable)).verdict).toBe('clean');
  return { epochs: log.epochs.length, states, bad };
}

async function baseImage(refcountBits: number, lazyRefcounts = false): Promise<Uint8Array> {
  const file = new MemoryFile();
  const setup = await Qcow2Image.create(file, { size: 512 * 1024, clusterSize: 512, refcountBits, lazyRefcounts });
  await setup.write(0, pseudoRandomBytes(20000, 1));
  await setup.write(300_000, pseudoRandomBytes(3000, 2));
  await setup.close();
  return file.bytes();
}

describe('crash with reordered writes between barriers', () => {
  it('writes, new L2 tables, frees and reuse, L1 and refcount growth, shrink: never corrupt', async () => {
    for (const refcountBits of [1, 16]) {
      const result = await judge(await baseImage(refcountBits), async (image) => {
        await image.write(1000, pseudoRandomBytes(3000, 3)); // in place, partial clusters
        await image.discard(4096, 8192); // frees clusters (their true counts land in the last flush phase)
        await image.flush();
        await image.write(200_000, pseudoRandomBytes(6000, 4)); // reuses the freed clusters, new L2 table
        await image.flush();
        await image.writeZeroes(300_000, 1024, { unmap: true });
        await image.flush();
        await image.resize(2 * 1024 * 1024); // L1 growth
        await image.write(1_000_000, pseudoRandomBytes(150_000, 5)); // new refcount blocks
        await image.flush();
        await image.resize(256 * 1024); // shrink: frees, truncates
      });
      expect(result.epochs).toBeGreaterThan(10);
      expect(result.bad, `refcount bits ${refcountBits}`).toEqual([]);
    }
  });

  it('refcount-table growth (64-bit refcounts, one entry per refcount block cluster)', async () => {
    const result = await judge(await baseImage(64), async (image) => {
      await image.resize(8 * 1024 * 1024);
      await image.write(4 * 1024 * 1024, pseudoRandomBytes(300_000, 6));
      await image.flush();
      await image.discard(4 * 1024 * 1024, 100_000);
      await image.flush();
      await image.write(7 * 1024 * 1024, pseudoRandomBytes(20_000, 7));
    });
    expect(result.bad).toEqual([]);
    expect(result.states).toBeGreaterThan(50);
  });
  it('a freed cluster reused before any flush: never two references, never the new data under the old mapping', async () => {
    for (const refcountBits of [1, 16]) {
      const old = pseudoRandomBytes(20000, 1);
      const fresh = pseudoRandomBytes(8000, 8);
      // The old range reads as its old data or as zeros (its discard landed), in
      // every crash state: the data written into its reused clusters never shows there.
      const inspect: Inspect = async (bytes) => {
        const image = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true });
        const got = await image.read(0, 8192);
        for (let i = 0; i < got.length; i++) {
          if (got[i] !== old[i] && got[i] !== 0) return `byte ${i} of the discarded range reads ${got[i]}, neither old data nor zero`;
        }
        return undefined;
      };
      const result = await judge(await baseImage(refcountBits), async (image) => {
        await image.discard(0, 8192); // frees 16 data clusters (in memory at once)
        await image.write(100_000, fresh); // takes them again: their drop is made durable first
        for (let round = 0; round < 4; round++) {
          await image.write(40_000, pseudoRandomBytes(2048, 10 + round));
          await image.discard(40_000, 2048);
        }
        await image.resize(64 * 1024); // shrink: frees L2 tables and data
        await image.resize(512 * 1024);
        await image.write(200_000, pseudoRandomBytes(30_000, 9)); // takes the freed tables and clusters
      }, inspect);
      expect(result.bad, `refcount bits ${refcountBits}`).toEqual([]);
      expect(result.epochs).toBeGreaterThan(10);
    }
  });

  it('reuse in one session keeps the file at its size: every round takes the clusters the last one freed', async () => {
    const base = await baseImage(16);
    const file = new MemoryFile(base);
    const image = await Qcow2Image.open(file);
    await image.write(400_000, pseudoRandomBytes(4096, 11));
    await image.discard(400_000, 4096);
    const grown = (await file.length());
    for (let round = 0; round < 20; round++) {
      await image.write(400_000, pseudoRandomBytes(4096, 12 + round));
      await image.discard(400_000, 4096);
      expect(await file.length()).toBe(grown);
    }
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });

  it('snapshot create, delete and revert: the table names a snapshot only with its counts; at most leaks and stale COPIED flags', async () => {
    // A count and the COPIED flags that must agree with it lie in different
    // clusters: a crash between them may leave a flag set on a cluster one
    // reference reaches (its count still high: `check -r leaks` repairs both),
    // never a flag set where a snapshot reaches the cluster too.
    for (const refcountBits of [4, 16]) {
      const base = await baseImage(refcountBits);
      const snapshotsIn = async (bytes: Uint8Array): Promise<string> => {
        const image = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true });
        return image.snapshots.list().map((s) => s.name).join(',');
      };
      const lists = new Set(['', 'a', 'a,b', 'b']);
      const inspect: Inspect = async (bytes) => {
        const names = await snapshotsIn(bytes);
        return lists.has(names) ? undefined : `snapshots [${names}]`;
      };
      const result = await judge(
        base,
        async (image) => {
          await image.snapshots.create('a'); // COPIED cleared on everything the active view reaches
          await image.write(1000, pseudoRandomBytes(3000, 20)); // COW of shared clusters
          await image.snapshots.create('b');
          await image.snapshots.delete('a'); // flags set again where one reference is left
          await image.write(100_000, pseudoRandomBytes(5000, 21));
          await image.snapshots.revert('b'); // the old view's drops after the L1 switch
          await image.snapshots.delete('b');
        },
        inspect,
        true,
      );
      expect(result.bad, `refcount bits ${refcountBits}`).toEqual([]);
      expect(result.states).toBeGreaterThan(40);
    }
  });
});
