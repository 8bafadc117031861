// Refcount blocks beyond the round trip (codecs.test.ts): the byte layout of
// every width (big-endian from 16 bits up), width limits as assertions,
// refcountMax per order, and 64-bit counts past 2^53 refused with a typed
// error. Written against surviving mutants of impl/format/refcount-block.ts
// (docs/mutation.md).
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../impl/assert.js';
import { Qcow2FormatError } from '../../../impl/errors.js';
import { RefcountBlock, refcountMax } from '../../../impl/format/refcount-block.js';

describe('refcount block layout', () => {
  it('places each width where QEMU does', () => {
    const bytesAfter = (order: number, index: number, value: number) => {
      const block = new RefcountBlock(new Uint8Array(16), order);
      block.set(index, value);
      return [...block.bytes];
    };
    const zeros = (n: number) => new Array<number>(n).fill(0);
    expect(bytesAfter(0, 9, 1)).toEqual([0, 0x02, ...zeros(14)]);
    expect(bytesAfter(1, 5, 2)).toEqual([0, 0x08, ...zeros(14)]);
    expect(bytesAfter(2, 3, 0xf)).toEqual([0, 0xf0, ...zeros(14)]);
    expect(bytesAfter(3, 2, 0xab)).toEqual([0, 0, 0xab, ...zeros(13)]);
    expect(bytesAfter(4, 1, 0x1234)).toEqual([0, 0, 0x12, 0x34, ...zeros(12)]);
    expect(bytesAfter(5, 1, 0x12345678)).toEqual([0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, ...zeros(8)]);
    expect(bytesAfter(6, 1, 0x123456789a)).toEqual([...zeros(8), 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0x9a]);
  });

  it('reads back each width from raw bytes, leaving neighbours alone', () => {
    const bytes = Uint8Array.from([0xa5, 0x3c, 0xff, 0x01, 0x80, 0, 0, 0x7f, 0, 2, 3, 4, 5, 6, 7, 8]);
    const read = (order: number, index: number) => new RefcountBlock(bytes.slice(), order).get(index);
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => read(0, i))).toEqual([1, 0, 1, 0, 0, 1, 0, 1]);
    expect([0, 1, 2, 3].map((i) => read(1, i))).toEqual([1, 1, 2, 2]);
    expect([0, 1, 2, 3].map((i) => read(2, i))).toEqual([5, 0xa, 0xc, 0x3]);
    expect(read(3, 2)).toBe(0xff);
    expect(read(4, 1)).toBe(0xff01);
    expect(read(5, 1)).toBe(0x8000007f);
    expect(read(6, 1)).toBe(0x02030405060708);
    const block = new RefcountBlock(bytes.slice(), 1);
    block.set(1, 0);
    expect([...block.bytes.subarray(0, 2)]).toEqual([0xa1, 0x3c]);
  });

  it('a 64-bit count past 2^53 is a typed error, 2^53 - 1 is read exactly', () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 53n);
    new DataView(bytes.buffer).setBigUint64(8, 2n ** 53n - 1n);
    const block = new RefcountBlock(bytes, 6);
    expect(() => block.get(0)).toThrow(Qcow2FormatError);
    expect(() => block.get(0)).toThrow(expect.objectContaining({ field: 'refcount', value: String(2n ** 53n) }));
    expect(block.get(1)).toBe(Number.MAX_SAFE_INTEGER);
    block.set(0, Number.MAX_SAFE_INTEGER);
    expect(block.get(0)).toBe(Number.MAX_SAFE_INTEGER);
  });
});

describe('refcount block invariants', () => {
  it('orders 0..6 only', () => {
    expect(() => new RefcountBlock(new Uint8Array(8), -1)).toThrow(AssertionError);
    expect(() => new RefcountBlock(new Uint8Array(8), 7)).toThrow(AssertionError);
    expect(new RefcountBlock(new Uint8Array(8), 0).entriesCount).toBe(64);
    expect(new RefcountBlock(new Uint8Array(8), 6).entriesCount).toBe(1);
  });

  it('indices stay inside the block', () => {
    const block = new RefcountBlock(new Uint8Array(8), 3);
    for (const bad of [-1, 8]) {
      expect(() => block.get(bad)).toThrow(AssertionError);
      expect(() => block.set(bad, 1)).toThrow(AssertionError);
    }
    block.set(7, 9);
    expect(block.get(7)).toBe(9);
    block.set(0, 4);
    expect(block.get(0)).toBe(4);
  });

  it('a value must fit its width', () => {
    const cases: [order: number, max: number][] = [[0, 1], [1, 3], [2, 15], [3, 255], [4, 65535], [5, 2 ** 32 - 1]];
    for (const [order, max] of cases) {
      const block = new RefcountBlock(new Uint8Array(8), order);
      block.set(0, max);
      expect(block.get(0)).toBe(max);
      expect(() => block.set(0, max + 1)).toThrow(AssertionError);
      expect(refcountMax(order)).toBe(max);
    }
    const wide = new RefcountBlock(new Uint8Array(8), 6);
    expect(() => wide.set(0, -1)).toThrow(AssertionError);
    expect(() => wide.set(0, 1.5)).toThrow(AssertionError);
    expect(() => wide.set(0, 2 ** 53)).toThrow(AssertionError);
    expect(refcountMax(6)).toBe(Number.MAX_SAFE_INTEGER);
  });
});
