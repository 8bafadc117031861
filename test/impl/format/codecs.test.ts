// decode(encode(x)) for every on-disk codec, plus fixed vectors from QEMU images.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeHeader, encodeHeader, type Header } from '../../../impl/format/header.js';
import { decodeExtensions, encodeCluster0 } from '../../../impl/format/header-extensions.js';
import { L2Table, classifyL2Entry, decodeL2Entry, encodeL2Entry, type L2Entry } from '../../../impl/format/l2-entry.js';
import { L1Table, decodeL1, encodeL1 } from '../../../impl/format/l1-table.js';
import { decodeReftable, encodeReftable } from '../../../impl/format/refcount-table.js';
import { RefcountBlock } from '../../../impl/format/refcount-block.js';
import { decodeCompressed, encodeCompressed } from '../../../impl/format/compressed-descriptor.js';
import { decodeSnapshotTable, encodeSnapshotTable, snapshotIcount, type SnapshotEntry } from '../../../impl/format/snapshot-table.js';

const headerArb: fc.Arbitrary<Header> = fc
  .record({
    version: fc.constantFrom<2 | 3>(2, 3),
    clusterBits: fc.integer({ min: 9, max: 21 }),
    size: fc.integer({ min: 0, max: 2 ** 50 }),
    l1Size: fc.integer({ min: 0, max: 2 ** 22 }),
    l1: fc.integer({ min: 0, max: 2 ** 30 }),
    rt: fc.integer({ min: 1, max: 2 ** 30 }),
    rtc: fc.integer({ min: 1, max: 100 }),
    nb: fc.integer({ min: 0, max: 65536 }),
    sn: fc.integer({ min: 0, max: 2 ** 30 }),
    dirty: fc.boolean(),
    lazy: fc.boolean(),
    order: fc.integer({ min: 0, max: 6 }),
    unknown: fc.uint8Array({ maxLength: 3 }).map((a) => new Uint8Array(a.length * 8).fill(a[0] ?? 1)),
  })
  .map((r) => ({
    version: r.version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: r.clusterBits,
    size: r.size,
    cryptMethod: 0,
    l1Size: r.l1Size,
    l1TableOffset: r.l1 * 512,
    refcountTableOffset: r.rt * 512,
    refcountTableClusters: r.rtc,
    nbSnapshots: r.nb,
    snapshotsOffset: r.sn * 512,
    incompatibleFeatures: r.version === 3 && r.dirty ? 1n : 0n,
    compatibleFeatures: r.version === 3 && r.lazy ? 1n : 0n,
    autoclearFeatures: 0n,
    refcountOrder: r.version === 3 ? r.order : 4,
    headerLength: r.version === 2 ? 72 : 112 + (r.version === 3 ? r.unknown.length : 0),
    compressionType: 0,
    unknownFields: r.version === 3 ? r.unknown : new Uint8Array(0),
  }));

describe('codecs round-trip', () => {
  it('header (struct and whole cluster 0 with extensions)', () => {
    fc.assert(fc.property(headerArb, fc.option(fc.string({ minLength: 1, maxLength: 15 }), { nil: undefined }), (h, fmt) => {
      expect(decodeHeader(encodeHeader(h))).toEqual(h);
      const unknown = [{ type: 0x1234, data: new Uint8Array([1, 2, 3]) }];
      const ext = fmt === undefined ? { unknown } : { backingFormat: fmt, unknown };
      const cluster0 = encodeCluster0({ ...h }, ext, undefined);
      expect(decodeExtensions(cluster0, decodeHeader(cluster0))).toEqual(ext);
    }));
  });

  it('L2 entries: decode(encode(e)) and one classifier', () => {
    const ctx = { version: 3 as const, clusterBits: 16 };
    const offset = fc.integer({ min: 1, max: 2 ** 30 }).map((c) => c * 65536);
    const entryArb: fc.Arbitrary<L2Entry> = fc.oneof(
      fc.constant<L2Entry>({ kind: 'unallocated' }),
      fc.constant<L2Entry>({ kind: 'zero-plain' }),
      fc.record({ kind: fc.constant('zero-alloc' as const), offset, copied: fc.boolean() }),
      fc.record({ kind: fc.constant('normal' as const), offset, copied: fc.boolean() }),
      fc.record({ kind: fc.constant('compressed' as const), descriptor: fc.record({ offset: fc.integer({ min: 0, max: 2 ** 40 }), length: fc.integer({ min: 1, max: 65536 }) }) })
        .map((e) => ({ ...e, descriptor: decodeCompressed(encodeCompressed(e.descriptor, 16), 16) })),
    );
    fc.assert(fc.property(entryArb, (e) => {
      const raw = encodeL2Entry(e, ctx);
      expect(classifyL2Entry(raw)).toBe(e.kind);
      expect(decodeL2Entry(raw, ctx, 'test')).toEqual(e);
    }));
  });

  it('L2 entries: reserved bits and v2 zero flags are corruption', () => {
    expect(() => decodeL2Entry(0x10000n | 2n, { version: 3, clusterBits: 16 }, 't')).toThrow(/reserved/);
    expect(() => decodeL2Entry(1n, { version: 2, clusterBits: 16 }, 't')).toThrow(/version 2/);
    expect(() => decodeL2Entry(0x10200n, { version: 3, clusterBits: 16 }, 't')).toThrow(/unaligned/);
    const table = new L2Table(new Uint8Array(512), { version: 3, clusterBits: 9 }, 0);
    table.set(3, { kind: 'normal', offset: 1024, copied: true });
    expect(table.raw(3)).toBe(0x8000000000000400n);
  });

  it('compressed descriptor: QEMU vectors (64 KiB clusters, x = 54)', () => {
    expect(decodeCompressed(0x4000000000050000n & ~(1n << 62n), 16)).toEqual({ offset: 0x50000, length: 512 });
    expect(decodeCompressed(0x400000000005004fn & ~(1n << 62n), 16)).toEqual({ offset: 0x5004f, length: 512 - 0x4f });
    fc.assert(fc.property(fc.integer({ min: 9, max: 21 }), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 1, max: 512 }), (bits, off, len) => {
      const d = decodeCompressed(encodeCompressed({ offset: off, length: len }, bits), bits);
      expect(d.offset).toBe(off);
      expect(d.length).toBeGreaterThanOrEqual(len);
      expect(d.length - len).toBeLessThan(512);
    }));
  });

  it('L1 and refcount table', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 ** 30 }), fc.boolean()), { maxLength: 40 }), (entries) => {
      const l1 = new L1Table(entries.length);
      entries.forEach(([c, copied], i) => {
        l1.offsets[i] = c * 512;
        l1.copied[i] = c !== 0 && copied ? 1 : 0;
      });
      expect(decodeL1(encodeL1(l1), l1.size, 512, 0)).toEqual(l1);
      expect([...decodeReftable(encodeReftable(l1.offsets), l1.size, 512, 0)]).toEqual([...l1.offsets]);
    }));
  });

  it('refcount blocks: every width, LSB-first sub-byte packing', () => {
    for (const order of [0, 1, 2, 3, 4, 5, 6]) {
      fc.assert(fc.property(fc.array(fc.tuple(fc.nat(511), fc.nat()), { maxLength: 30 }), (sets) => {
        const block = new RefcountBlock(new Uint8Array(512), order);
        const expected = new Map<number, number>();
        for (const [i, v] of sets) {
          const index = i % block.entriesCount;
          const value = order >= 5 ? v : v % 2 ** (1 << order);
          block.set(index, value);
          expected.set(index, value);
        }
        for (const [i, v] of expected) expect(block.get(i)).toBe(v);
      }));
    }
    const one = new RefcountBlock(new Uint8Array(8), 0);
    for (let i = 0; i < 7; i++) one.set(i, 1);
    expect(one.bytes[0]).toBe(0x7f); // qemu-img 7.2: clusters 0-6 in use
    const two = new RefcountBlock(new Uint8Array(8), 1);
    two.set(1, 3);
    expect(two.bytes[0]).toBe(0x0c);
    const four = new RefcountBlock(new Uint8Array(8), 2);
    four.set(1, 5);
    expect(four.bytes[0]).toBe(0x50);
  });

  it('snapshot table', () => {
    const entryArb: fc.Arbitrary<SnapshotEntry> = fc.record({
      l1TableOffset: fc.integer({ min: 0, max: 2 ** 30 }).map((c) => c * 512),
      l1Size: fc.nat(1000),
      id: fc.string({ maxLength: 5 }),
      name: fc.string({ maxLength: 20 }),
      dateSec: fc.nat(),
      dateNsec: fc.nat(999_999_999),
      vmClockNsec: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      vmStateSize: fc.nat(),
      diskSize: fc.integer({ min: 0, max: 2 ** 40 }),
      extraData: fc.constant(new Uint8Array(24)),
    });
    fc.assert(fc.property(fc.array(entryArb, { maxLength: 5 }), (entries) => {
      const bytes = encodeSnapshotTable(entries, 24);
      const decoded = decodeSnapshotTable(bytes, entries.length, 0);
      expect(decoded.map((e) => ({ ...e, extraData: undefined }))).toEqual(entries.map((e) => ({ ...e, extraData: undefined })));
    }));
  });

  it('snapshot icount: 0 as qemu-img creates it, absent when disabled (-1) or not recorded', () => {
    const entry = (extraData: Uint8Array): SnapshotEntry => ({
      l1TableOffset: 512, l1Size: 1, id: '1', name: 's', dateSec: 0, dateNsec: 0, vmClockNsec: 0n, vmStateSize: 0, diskSize: 1 << 20, extraData,
    });
    const roundTrip = (e: SnapshotEntry) => {
      const [decoded] = decodeSnapshotTable(encodeSnapshotTable([e], 24), 1, 0);
      expect(decoded).toBeDefined();
      return decoded as SnapshotEntry;
    };
    expect(snapshotIcount(roundTrip(entry(new Uint8Array(24))))).toBe(0n);
    const recorded = new Uint8Array(24);
    new DataView(recorded.buffer).setBigInt64(16, 123_456_789_012n);
    expect(snapshotIcount(roundTrip(entry(recorded)))).toBe(123_456_789_012n);
    // Short extra data: QEMU assumes -1 and writes it back as -1 when it pads the entry.
    const short = entry(new Uint8Array(16));
    expect(snapshotIcount(short)).toBeUndefined();
    const padded = roundTrip(short);
    expect(padded.extraData.length).toBe(24);
    expect(new DataView(padded.extraData.buffer).getBigInt64(16)).toBe(-1n);
    expect(snapshotIcount(padded)).toBeUndefined();
  });
});
