// The active L1 table (impl/cluster-map.ts) where the random sequences do not
// look (docs/mutation.md lists the mutants each test was written against): a
// changed entry is written as its 512-byte sector, as QEMU's
// qcow2_write_l1_entry does; a grown L1 frees every cluster of the old one; the
// L1 stops at QEMU's limit, exactly; a flush that changes only the header costs
// one write; and the invariant checks of the mapping fire.
import { describe, expect, it } from 'vitest';
import { AssertionError, MemoryFile, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { decodeHeader } from '../../impl/format/header.js';
import { l1SizeBytesMax } from '../../impl/limits.js';
import { openState } from '../../impl/open.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { IoLog } from './io-log.js';
import { keepOpen } from './model-agreement.js';
import { firstDifference, pseudoRandomBytes } from './qemu-helpers.js';

const clock = () => ({ sec: 1_700_000_000, nsec: 0 });
const KiB = 1024;
/** 512-byte clusters: an L2 table maps 64 clusters, so one L1 entry covers 32 KiB. */
const l1EntryBytes = 32 * KiB;
const small = { clusterSize: 512 } as const;

/** An image whose L1 has `entries` entries, reopened on a write log. */
async function imageWithL1(entries: number): Promise<{ file: MemoryFile; log: IoLog; image: Qcow2Image }> {
  const file = new MemoryFile();
  await (await Qcow2Image.create(keepOpen(file), { size: entries * l1EntryBytes, ...small })).close();
  expect(decodeHeader(file.bytes()).l1Size).toBe(entries);
  const log = new IoLog(file);
  return { file, log, image: await Qcow2Image.open(log, { clock }) };
}

describe('L1 writes', () => {
  for (const [l1Index, sector] of [[3, [0, 64]], [70, [64, 100]], [99, [64, 100]]] as const) {
    it(`a new L2 table at L1 index ${l1Index} of 100 rewrites entries ${sector[0]}..${sector[1] - 1} only`, async () => {
      const { file, log, image } = await imageWithL1(100);
      const l1Offset = decodeHeader(file.bytes()).l1TableOffset;
      await image.write(l1Index * l1EntryBytes, pseudoRandomBytes(512, l1Index));
      log.reset();
      await image.flush();
      const l1Writes = log.writes.filter((w) => w.offset >= l1Offset && w.offset < l1Offset + 100 * 8);
      expect(l1Writes).toEqual([{ offset: l1Offset + sector[0] * 8, length: (sector[1] - sector[0]) * 8 }]);
      await image.close();
      expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
    });
  }

  it('growing an L1 of several clusters frees every one of them', async () => {
    const { file, image } = await imageWithL1(100); // 800 bytes: 2 clusters
    await image.write(0, pseudoRandomBytes(4 * KiB, 1));
    const before = decodeHeader(file.bytes());
    await image.resize(300 * l1EntryBytes);
    await image.close();
    const after = decodeHeader(file.bytes());
    expect(after.l1TableOffset).not.toBe(before.l1TableOffset);
    expect(after.l1Size).toBe(300);
    const report = checkImage(bufferReader(file.bytes()));
    expect(report.verdict, report.messages.join('\n')).toBe('clean');
  });

  it('growing the disk inside its L1 changes only the header: one write, two barriers', async () => {
    const file = new MemoryFile();
    await (await Qcow2Image.create(keepOpen(file), { size: 10 * KiB, ...small })).close();
    const log = new IoLog(file);
    const image = await Qcow2Image.open(log, { clock });
    await image.resize(20 * KiB); // still one L1 entry
    await image.flush();
    // The header's version 2 fields only: a resize updates fields in place, as QEMU does.
    expect(log.writes).toEqual([{ offset: 0, length: 72 }]);
    expect(log.barriers).toBe(2); // the header's, then flush()'s own
    await image.close();
  });
});

describe(`the L1 limit (${l1SizeBytesMax / 8} entries, QEMU's QCOW_MAX_L1_SIZE)`, () => {
  it('one entry more is refused untouched; exactly the limit is accepted', async () => {
    const file = new MemoryFile();
    const image = await Qcow2Image.create(keepOpen(file), { size: 64 * KiB, ...small }, { clock });
    await image.flush();
    const before = file.bytes().slice();
    const limitSize = (l1SizeBytesMax / 8) * l1EntryBytes;
    const error = await image.resize(limitSize + 512).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Qcow2Error);
    expect((error as Qcow2Error).code).toBe('unsupported');
    expect((error as Qcow2Error).message).toBe(`L1 table would need ${l1SizeBytesMax / 8 + 1} entries (limit ${l1SizeBytesMax / 8})`);
    await image.flush();
    expect(firstDifference(file.bytes(), before)).toBe(-1);
    await image.resize(limitSize);
    await image.close();
    expect(decodeHeader(file.bytes()).l1Size).toBe(l1SizeBytesMax / 8);
  });
});

describe('invariant checks of the mapping', () => {
  it('refuse broken calls with an AssertionError', async () => {
    const file = new MemoryFile();
    const setup = await Qcow2Image.create(keepOpen(file), { size: 4 * l1EntryBytes, ...small }, { clock });
    await setup.write(0, pseudoRandomBytes(512, 2));
    await setup.snapshots.create('shared'); // the L2 table of entry 0 is now shared
    await setup.close();
    const s = await openState(keepOpen(file), { readOnly: false, clock });
    const broken: [string, () => unknown][] = [
      ['an L1 index past the table', () => s.map.markL1Dirty(4)],
      ['a negative L1 index', () => s.map.markL1Dirty(-1)],
      ['a fractional L1 index', () => s.map.markL1Dirty(1.5)],
      ['a guest cluster past the L1', () => s.map.entry(4 * 64)],
      ['a table entry set in a shared table', () => s.map.setEntry(0, { kind: 'zero-plain' })],
    ];
    for (const [what, call] of broken) {
      await expect(Promise.resolve().then(call), what).rejects.toBeInstanceOf(AssertionError);
    }
  });
});
