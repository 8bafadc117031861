// Snapshot corners the random sequences do not reach (docs/mutation.md lists the
// impl/snapshot.ts mutants each test was written against): the snapshot limits
// at their exact boundaries, IDs other tools wrote, a snapshot L1 longer than the
// active one, a zero-sized disk, a table over several clusters, the error texts
// users read, and that a delete leaving COPIED alone rewrites no table. Images
// with hand-made snapshot tables get their refcounts from the engine's own
// dirty-image repair; where QEMU's behaviour pins the answer, QEMU runs too.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Error, Qcow2FormatError, Qcow2Image } from '../../impl/index.js';
import { decodeHeader, encodeHeader } from '../../impl/format/header.js';
import { decodeL1 } from '../../impl/format/l1-table.js';
import { decodeSnapshotTable, encodeSnapshotTable, type SnapshotEntry } from '../../impl/format/snapshot-table.js';
import { snapshotTableBytesMax, snapshotsCountMax } from '../../impl/limits.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { IoLog } from './io-log.js';
import { keepOpen } from './model-agreement.js';
import { firstDifference, pseudoRandomBytes, qemuImg, withTempDir } from './qemu-helpers.js';

const clock = () => ({ sec: 1_700_000_000, nsec: 0 });
const KiB = 1024;
const MiB = 1024 * KiB;
/** The incompatible "dirty" bit: with lazy refcounts, open rebuilds every refcount. */
const incompatDirty = 1n;

function entry(id: string, name: string, diskSize: number): SnapshotEntry {
  return {
    l1TableOffset: 0, l1Size: 0, id, name, dateSec: 0, dateNsec: 0, vmClockNsec: 0n,
    vmStateSize: 0, diskSize, extraData: new Uint8Array(24),
  };
}

/**
 * A 1 MiB image (64 KiB clusters) whose snapshot table is `entries`, appended
 * after everything else. The header says dirty with lazy refcounts, so the first
 * read-write open rebuilds the refcounts, table included, and close writes them.
 */
async function imageWithSnapshotTable(entries: readonly SnapshotEntry[]): Promise<MemoryFile> {
  const clusterSize = 64 * KiB;
  const made = new MemoryFile();
  await (await Qcow2Image.create(keepOpen(made), { size: MiB, clusterSize, lazyRefcounts: true })).close();
  const bytes = made.bytes();
  const header = decodeHeader(bytes);
  const table = encodeSnapshotTable(entries, 0);
  const tableOffset = Math.ceil(bytes.length / clusterSize) * clusterSize;
  const out = new Uint8Array(tableOffset + Math.ceil(table.length / clusterSize) * clusterSize);
  out.set(bytes);
  out.set(table, tableOffset);
  out.set(encodeHeader({
    ...header,
    nbSnapshots: entries.length,
    snapshotsOffset: tableOffset,
    incompatibleFeatures: header.incompatibleFeatures | incompatDirty,
  }));
  const file = new MemoryFile(out);
  await (await Qcow2Image.open(keepOpen(file))).close();
  expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  return file;
}

/** Rewrite the snapshot table in place (the edit must keep it inside its clusters). */
function editSnapshotTable(bytes: Uint8Array, edit: (entries: SnapshotEntry[]) => SnapshotEntry[]): Uint8Array {
  const header = decodeHeader(bytes);
  const entries = decodeSnapshotTable(bytes.subarray(header.snapshotsOffset), header.nbSnapshots, header.snapshotsOffset);
  const edited = edit(entries);
  expect(edited.length).toBe(entries.length);
  const table = encodeSnapshotTable(edited, 0);
  // The file may end where the old table ended; the cluster has room for more.
  const out = new Uint8Array(Math.max(bytes.length, header.snapshotsOffset + table.length));
  out.set(bytes);
  out.set(table, header.snapshotsOffset);
  return out;
}

/** The error a rejected promise carries (fails the test when it resolves). */
async function refusal(promise: Promise<unknown>): Promise<Qcow2Error> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(Qcow2Error);
  return error as Qcow2Error;
}

describe('snapshot limits, at the boundary', () => {
  it(`the ${snapshotsCountMax}th snapshot is the last: one more is refused and the file is untouched`, async () => {
    const entries = Array.from({ length: snapshotsCountMax }, (_, i) => entry(String(i + 1), '', MiB));
    const file = await imageWithSnapshotTable(entries);
    const before = file.bytes().slice();
    const image = await Qcow2Image.open(keepOpen(file), { clock });
    expect(image.snapshots.list()).toHaveLength(snapshotsCountMax);
    const error = await refusal(image.snapshots.create('one-too-many'));
    expect(error.code).toBe('unsupported');
    expect(error.message).toBe(`already ${snapshotsCountMax} snapshots`);
    await image.close();
    expect(firstDifference(file.bytes(), before)).toBe(-1);
  });

  it(`a table of exactly ${snapshotTableBytesMax} bytes is written; one byte more is refused untouched`, async () => {
    // 1023 entries of exactly 65536 bytes (40 fixed + 24 extra + ID + name), and
    // the new one (ID "1024") fills the table to the limit with a 65468-byte name.
    const entryBytes = 64 * KiB;
    const long = 'n'.repeat(entryBytes);
    const entries = Array.from({ length: 1023 }, (_, i) => entry(String(i + 1), long.slice(0, entryBytes - 64 - String(i + 1).length), MiB));
    const file = await imageWithSnapshotTable(entries);
    const fitting = long.slice(0, entryBytes - 64 - '1024'.length);
    const before = file.bytes().slice();
    const image = await Qcow2Image.open(keepOpen(file), { clock });
    const error = await refusal(image.snapshots.create(`${fitting}x`));
    expect(error.code).toBe('unsupported');
    expect(error.message).toBe(`snapshot table would need ${snapshotTableBytesMax + 1} bytes (limit ${snapshotTableBytesMax})`);
    await image.flush();
    expect(firstDifference(file.bytes(), before)).toBe(-1);
    await image.snapshots.create(fitting);
    await image.close();
    const reopened = await Qcow2Image.open(keepOpen(file), { readOnly: true });
    expect(reopened.snapshots.list().map((s) => s.id).slice(-2)).toEqual(['1023', '1024']);
    await reopened.close();
  });
});

describe('snapshot IDs', () => {
  it('count on past 9 (IDs are decimal, not one digit)', async () => {
    const image = await Qcow2Image.create(new MemoryFile(), { size: MiB, clusterSize: 4 * KiB }, { clock });
    for (let i = 0; i < 11; i++) await image.snapshots.create(`s${i}`);
    expect(image.snapshots.list().map((s) => s.id)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11']);
    await image.close();
  });

  it("after IDs other tools wrote ('7b', 'x9'), the next one is QEMU's: leading digits count", async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: MiB, clusterSize: 4 * KiB }, { clock });
    await image.snapshots.create('a');
    await image.snapshots.create('b');
    await image.close();
    const foreign = editSnapshotTable(file.bytes(), ([a, b]) => [{ ...a!, id: '7b' }, { ...b!, id: 'x9' }]);

    const ours = await Qcow2Image.open(new MemoryFile(foreign), { clock });
    await ours.snapshots.create('c');
    const ourIds = ours.snapshots.list().map((s) => s.id);
    await ours.close();

    const qemuIds = await withTempDir(async (dir) => {
      const path = join(dir, 'foreign.qcow2');
      await writeFile(path, foreign);
      await qemuImg(['snapshot', '-c', 'c', path]);
      const info = JSON.parse(await qemuImg(['info', '--output=json', path])) as { snapshots: { id: string }[] };
      return info.snapshots.map((s) => s.id);
    });
    expect(qemuIds).toEqual(['7b', 'x9', '8']);
    expect(ourIds).toEqual(qemuIds);
  });
});

describe('revert', () => {
  it("grows a shorter active L1 to exactly the snapshot's L1 size, as QEMU does", async () => {
    // A 2 GiB disk has 4 L1 entries (64 KiB clusters); shrunk to 0 it keeps them,
    // and snapshot "b" of the empty disk records all 4. The header then claims
    // an L1 of 0 entries (enough for 0 bytes), so revert must grow it back.
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 2048 * MiB, clusterSize: 64 * KiB }, { clock });
    await image.write(1536 * MiB, pseudoRandomBytes(4096, 1));
    await image.resize(0);
    await image.snapshots.create('b');
    await image.close();
    const crafted = file.bytes().slice();
    crafted.set(encodeHeader({ ...decodeHeader(crafted), l1Size: 0 }));
    const l1SizeAt = (bytes: Uint8Array) => decodeHeader(bytes).l1Size;

    const ours = new MemoryFile(crafted);
    const reverted = await Qcow2Image.open(keepOpen(ours), { clock });
    await reverted.snapshots.revert('b');
    await reverted.close();

    const qemuL1Size = await withTempDir(async (dir) => {
      const path = join(dir, 'short-l1.qcow2');
      await writeFile(path, crafted);
      await qemuImg(['snapshot', '-a', 'b', path]);
      return l1SizeAt(new Uint8Array(await readFile(path)));
    });
    expect(qemuL1Size).toBe(4);
    expect(l1SizeAt(ours.bytes())).toBe(qemuL1Size);
  });

  it('refuses a snapshot disk size that is no multiple of 512 before the refcount check, leaving the file untouched', async () => {
    // With 2-bit refcounts two snapshots take every cluster to 3, so this revert
    // would also overflow; QEMU resizes first, so the size is what it refuses.
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: MiB, clusterSize: 4 * KiB, refcountBits: 2 }, { clock });
    await image.write(0, pseudoRandomBytes(8192, 2));
    await image.snapshots.create('a');
    await image.snapshots.create('b');
    await image.close();
    const crafted = editSnapshotTable(file.bytes(), ([a, b]) => [{ ...a!, diskSize: 1000 }, b!]);
    const target = new MemoryFile(crafted);
    const reverting = await Qcow2Image.open(keepOpen(target), { clock });
    const error = await refusal(reverting.snapshots.revert('a'));
    expect(error.code).toBe('invalid-argument');
    expect(error.message).toContain('1000');
    expect((await refusal(reverting.snapshots.revert('b'))).code).toBe('refcount-overflow');
    await reverting.close();
    expect(firstDifference(target.bytes(), crafted)).toBe(-1);
  });

  it("names the snapshot whose L1 table is misplaced", async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: MiB, clusterSize: 4 * KiB }, { clock });
    await image.write(0, pseudoRandomBytes(4096, 3));
    await image.snapshots.create('a');
    await image.close();
    const crafted = editSnapshotTable(file.bytes(), ([a]) => [{ ...a!, l1TableOffset: 4096 + 512 }]);
    const target = new MemoryFile(crafted);
    const opened = await Qcow2Image.open(keepOpen(target), { clock });
    for (const job of [() => opened.snapshots.revert('a'), () => opened.snapshots.delete('a')]) {
      const error = await refusal(job());
      expect(error).toBeInstanceOf(Qcow2FormatError);
      expect((error as Qcow2FormatError).field).toBe('snapshot 1 l1_table_offset');
    }
    await opened.close();
    expect(firstDifference(target.bytes(), crafted)).toBe(-1);
  });
});

describe('error texts users read', () => {
  it('an unknown snapshot is named', async () => {
    const image = await Qcow2Image.create(new MemoryFile(), { size: MiB, clusterSize: 4 * KiB });
    for (const job of [() => image.snapshots.revert('nope'), () => image.snapshots.delete('nope')]) {
      const error = await refusal(job());
      expect(error.code).toBe('unknown-snapshot');
      expect(error.message).toBe("snapshot 'nope' not found");
    }
    await image.close();
  });

  it('a refcount overflow names the cluster, the count it would reach and the maximum', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: MiB, clusterSize: 4 * KiB, refcountBits: 1 });
    await image.write(0, pseudoRandomBytes(4096, 4));
    await image.flush();
    const before = file.bytes().slice();
    const error = await refusal(image.snapshots.create('a'));
    expect(error.code).toBe('refcount-overflow');
    expect(error.message).toMatch(/^cluster \d+ would get refcount 2 \(max 1\)$/);
    await image.close();
    expect(firstDifference(file.bytes(), before)).toBe(-1);
  });
});

describe('unusual shapes', () => {
  it('a zero-sized disk (no L1 entries) snapshots, reverts and deletes cleanly', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 0, clusterSize: 512 }, { clock });
    await image.snapshots.create('empty');
    expect(image.snapshots.list()).toHaveLength(1);
    await image.flush();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
    await image.snapshots.revert('empty');
    await image.snapshots.delete('empty');
    await image.close();
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });

  it('a snapshot table over several 512-byte clusters is freed whole on every rewrite', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 64 * KiB, clusterSize: 512 }, { clock });
    await image.write(0, pseudoRandomBytes(2048, 5));
    for (let i = 0; i < 12; i++) await image.snapshots.create(`snapshot-with-a-longer-name-${i}`);
    for (const i of [3, 0, 11, 7]) {
      await image.snapshots.delete(`snapshot-with-a-longer-name-${i}`);
      await image.flush();
      const report = checkImage(bufferReader(file.bytes()));
      expect(report.verdict, report.messages.join('\n')).toBe('clean');
    }
    await image.close();
  });
});

describe('metadata writes', () => {
  it('deleting one of two snapshots (COPIED stays clear everywhere) rewrites neither the L1 nor any L2 table', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 4 * MiB, clusterSize: 4 * KiB }, { clock });
    await image.write(0, pseudoRandomBytes(12 * KiB, 6));
    await image.write(3 * MiB, pseudoRandomBytes(4 * KiB, 7));
    await image.snapshots.create('a');
    await image.snapshots.create('b');
    await image.close();

    const bytes = file.bytes();
    const header = decodeHeader(bytes);
    const l1 = decodeL1(bytes.subarray(header.l1TableOffset), header.l1Size, 4 * KiB, header.l1TableOffset);
    const tables = [{ offset: header.l1TableOffset, length: header.l1Size * 8 }];
    for (const offset of l1.offsets) if (offset !== 0) tables.push({ offset, length: 4 * KiB });
    expect(tables.length).toBeGreaterThan(1);

    const log = new IoLog(file);
    const reopened = await Qcow2Image.open(log, { clock });
    await reopened.snapshots.delete('a');
    await reopened.close();
    expect(log.writes.length).toBeGreaterThan(0);
    const touched = log.writes.filter((w) => tables.some((t) => w.offset < t.offset + t.length && t.offset < w.offset + w.length));
    expect(touched).toEqual([]);
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });
});
