// Extended L2 entries: the subcluster bitmap codec round-trips, the bitmaps
// QEMU calls invalid are typed corruption naming the entry, the per-subcluster
// classification follows qcow2_get_subcluster_type, and an L2Table reads and
// writes 16-byte entries without touching the neighbouring bitmap.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../impl/assert.js';
import { Qcow2Error } from '../../../impl/errors.js';
import { L2Table } from '../../../impl/format/l2-entry.js';
import {
  ctz32,
  decodeBitmap,
  encodeBitmap,
  markAllocated,
  markZero,
  subclusterKind,
  subclusterRange,
} from '../../../impl/format/l2-entry-extended.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** A valid bitmap: no subcluster both allocated and zero. */
const bitmap = fc.tuple(u32, u32).map(([alloc, zero]) => ({ alloc, zero: (zero & ~alloc) >>> 0 }));

describe('subcluster bitmap codec', () => {
  it('decode(encode(b)) = b for every valid bitmap of a normal cluster', () => {
    fc.assert(
      fc.property(bitmap, (b) => {
        expect(decodeBitmap(encodeBitmap(b), 'normal', 't')).toEqual(b);
      }),
    );
  });

  it('bit i is subcluster i: allocation in the low word, zero in the high word', () => {
    expect(encodeBitmap({ alloc: 1, zero: 0 })).toBe(1n);
    expect(encodeBitmap({ alloc: 0, zero: 1 })).toBe(1n << 32n);
    expect(encodeBitmap({ alloc: 0x80000000, zero: 0x40000000 })).toBe((1n << 31n) | (1n << 62n));
  });

  it.each([
    ['a subcluster both allocated and zero', 1n | (1n << 32n), 'normal', /subcluster both allocated and zero/],
    ['allocation bits in an unallocated cluster', 0x10n, 'unallocated', /unallocated cluster with allocated subclusters/],
    ['any bit on a compressed cluster', 1n << 40n, 'compressed', /compressed cluster with a non-zero subcluster bitmap/],
  ] as const)('%s is corruption naming the entry', (_what, raw, kind, message) => {
    const decode = () => decodeBitmap(raw, kind, 'L2 table at 65536 entry 3');
    expect(decode).toThrow(Qcow2Error);
    expect(decode).toThrow(message);
    expect(decode).toThrow(/^L2 table at 65536 entry 3: /);
  });

  it('zero bits alone on an unallocated cluster are valid zero subclusters', () => {
    expect(decodeBitmap(0xffn << 32n, 'unallocated', 't')).toEqual({ alloc: 0, zero: 0xff });
  });

  it('the encoder refuses a bitmap with a subcluster both allocated and zero', () => {
    expect(() => encodeBitmap({ alloc: 4, zero: 4 })).toThrow(AssertionError);
  });
});

describe('subcluster ranges and kinds', () => {
  it('markAllocated and markZero set their half over [first, end) and clear the other half there only', () => {
    fc.assert(
      fc.property(bitmap, fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 32 }), (b, x, y) => {
        const [first, end] = x <= y ? [x, y] : [y, x];
        const range = subclusterRange(first, end);
        const a = markAllocated(b, first, end);
        expect(a).toEqual({ alloc: (b.alloc | range) >>> 0, zero: (b.zero & ~range) >>> 0 });
        const z = markZero(b, first, end);
        expect(z).toEqual({ alloc: (b.alloc & ~range) >>> 0, zero: (b.zero | range) >>> 0 });
        expect(a.alloc & a.zero).toBe(0);
        expect(z.alloc & z.zero).toBe(0);
      }),
    );
    expect(subclusterRange(0, 32)).toBe(0xffffffff);
    expect(subclusterRange(31, 32)).toBe(0x80000000);
    expect(subclusterRange(5, 5)).toBe(0);
  });

  it('zero wins over allocation in the kind, unallocated otherwise, compressed ignores the bitmap', () => {
    const b = { alloc: 0b0110, zero: 0b1000 };
    expect([0, 1, 2, 3].map((i) => subclusterKind('normal', b, i))).toEqual(['unallocated', 'data', 'data', 'zero']);
    expect(subclusterKind('unallocated', { alloc: 0, zero: 1 }, 0)).toBe('zero');
    expect(subclusterKind('compressed', b, 1)).toBe('compressed');
    expect(() => subclusterKind('normal', b, 32)).toThrow(AssertionError);
  });

  it('ctz32 as QEMU: the lowest set bit, 32 for none', () => {
    expect([0, 1, 2, 0x80000000, 0b101000].map(ctz32)).toEqual([32, 0, 1, 31, 3]);
  });
});

describe('an extended L2 table', () => {
  it('holds cs / 16 entries; set() writes the entry word only, setBitmap() the bitmap word only', () => {
    const table = new L2Table(new Uint8Array(16384), { version: 3, clusterBits: 14, extendedL2: true }, 65536);
    expect(table.entriesCount).toBe(1024);
    table.setBitmap(5, { alloc: 3, zero: 4 });
    table.set(5, { kind: 'normal', offset: 0x30000, copied: true });
    table.set(6, { kind: 'normal', offset: 0x34000, copied: false });
    const view = new DataView(table.bytes.buffer);
    expect(view.getBigUint64(5 * 16)).toBe(0x30000n | (1n << 63n));
    expect(view.getBigUint64(5 * 16 + 8)).toBe(3n | (4n << 32n));
    expect(view.getBigUint64(6 * 16 + 8)).toBe(0n);
    expect(table.get(5)).toEqual({ kind: 'normal', offset: 0x30000, copied: true });
    expect(table.bitmap(5)).toEqual({ alloc: 3, zero: 4 });
  });

  it('ignores the zero flag (bit 0) of an extended entry, as qcow2_get_cluster_type does', () => {
    const table = new L2Table(new Uint8Array(16384), { version: 3, clusterBits: 14, extendedL2: true }, 65536);
    new DataView(table.bytes.buffer).setBigUint64(0, 0x30000n | 1n);
    expect(table.get(0)).toEqual({ kind: 'normal', offset: 0x30000, copied: false });
    expect(() => table.set(1, { kind: 'zero-plain' })).toThrow(AssertionError);
  });
});
