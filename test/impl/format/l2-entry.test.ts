// L2 entries beyond the round trip (codecs.test.ts): each corruption QEMU treats
// as fatal is a typed 'corrupt' error with the entry's place in the message, and
// the encoder's invariants (aligned non-zero offsets, zero flags only in v3,
// indices inside the table) are assertions that fire. Written against surviving
// mutants of impl/format/l2-entry.ts (docs/mutation.md).
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../../impl/assert.js';
import { Qcow2Error } from '../../../impl/errors.js';
import { L2Table, decodeL2Entry, encodeL2Entry, oflagCompressed, oflagCopied, type L2Context } from '../../../impl/format/l2-entry.js';

const v3 = { version: 3 as const, clusterBits: 16 };
const v2 = { version: 2 as const, clusterBits: 16 };

function corruptCode(raw: bigint, ctx: L2Context): string {
  try {
    decodeL2Entry(raw, ctx, 'L2 table at 65536 entry 7');
  } catch (error) {
    expect(error).toBeInstanceOf(Qcow2Error);
    const e = error as Qcow2Error;
    expect(e.message).toContain('L2 table at 65536 entry 7');
    return e.code;
  }
  return 'accepted';
}

describe('L2 entry decoding refuses what QEMU refuses', () => {
  it('a compressed entry with COPIED decodes as QEMU reads it (the flag masked away), but not on an extended-L2 image', () => {
    const descriptor = 0x12345n << 8n; // offset bits of a small compressed run
    expect(decodeL2Entry(oflagCompressed | descriptor, v3, 't').kind).toBe('compressed');
    expect(decodeL2Entry(oflagCompressed | oflagCopied | descriptor, v3, 't')).toEqual(decodeL2Entry(oflagCompressed | descriptor, v3, 't'));
    expect(corruptCode(oflagCompressed | oflagCopied | descriptor, { ...v3, extendedL2: true })).toBe('corrupt');
  });

  it('reserved bits, v2 zero flags and unaligned offsets are typed corruption', () => {
    expect(corruptCode(0x10000n | 2n, v3)).toBe('corrupt');
    expect(corruptCode(1n << 56n, v3)).toBe('corrupt');
    expect(corruptCode(1n, v2)).toBe('corrupt');
    expect(corruptCode(0x10000n | 1n, v2)).toBe('corrupt');
    expect(corruptCode(0x10200n, v3)).toBe('corrupt');
    // the same bits without the fault decode
    expect(decodeL2Entry(0x10000n, v2, 't')).toEqual({ kind: 'normal', offset: 0x10000, copied: false });
    expect(decodeL2Entry(0x10000n | 1n | oflagCopied, v3, 't')).toEqual({ kind: 'zero-alloc', offset: 0x10000, copied: true });
    expect(decodeL2Entry(1n, v3, 't')).toEqual({ kind: 'zero-plain' });
  });

  it('an offset past 2^53 is a typed format error naming the field, never rounded', () => {
    expect(() => decodeL2Entry(1n << 54n, v3, 't')).toThrow(expect.objectContaining({ code: 'format', field: 'L2 entry offset', value: String(1n << 54n) }));
  });

  it('a table names itself and the entry when an entry is corrupt', () => {
    const table = new L2Table(new Uint8Array(512), { version: 2, clusterBits: 9 }, 1536);
    new DataView(table.bytes.buffer).setBigUint64(3 * 8, 0x10000n | 1n); // zero flag in v2
    expect(() => table.get(3)).toThrow('L2 table at 1536 entry 3');
  });
});

describe('L2 entry encoding guards its invariants', () => {
  it('zero flags only in version 3', () => {
    expect(() => encodeL2Entry({ kind: 'zero-plain' }, v2)).toThrow(AssertionError);
    expect(() => encodeL2Entry({ kind: 'zero-alloc', offset: 0x10000, copied: false }, v2)).toThrow(AssertionError);
    expect(encodeL2Entry({ kind: 'normal', offset: 0x10000, copied: false }, v2)).toBe(0x10000n);
    expect(encodeL2Entry({ kind: 'zero-alloc', offset: 0x10000, copied: false }, v3)).toBe(0x10001n);
  });

  it('an entry of no known kind is an assertion, not a silent zero', () => {
    expect(() => encodeL2Entry({ kind: 'subcluster' } as never, v3)).toThrow(AssertionError);
  });

  it('data offsets are non-zero and cluster aligned', () => {
    expect(() => encodeL2Entry({ kind: 'normal', offset: 0, copied: true }, v3)).toThrow(AssertionError);
    expect(() => encodeL2Entry({ kind: 'normal', offset: 0x10200, copied: true }, v3)).toThrow(AssertionError);
    expect(() => encodeL2Entry({ kind: 'zero-alloc', offset: 0x8000, copied: true }, v3)).toThrow(AssertionError);
  });

  it('a table is one cluster and its indices stay inside it', () => {
    const ctx = { version: 3 as const, clusterBits: 9 };
    expect(() => new L2Table(new Uint8Array(1024), ctx, 0)).toThrow(AssertionError);
    const table = new L2Table(new Uint8Array(512), ctx, 512);
    expect(table.entriesCount).toBe(64);
    const entry = { kind: 'normal' as const, offset: 1024, copied: false };
    expect(() => table.set(-1, entry)).toThrow(AssertionError);
    expect(() => table.set(64, entry)).toThrow(AssertionError);
    table.set(0, entry);
    table.set(63, entry);
    expect(table.raw(0)).toBe(1024n);
    expect(table.raw(63)).toBe(1024n);
    expect(table.get(63)).toEqual(entry);
    expect(() => table.get(63 - 64)).toThrow();
  });
});
