import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { formatOp, writeBytes, type WriteOp } from '../../model/ops.js';

describe('writeBytes', () => {
  it('fills with the pattern when there is no seed', () => {
    expect([...writeBytes({ kind: 'write', offset: 0, length: 4, pattern: 0x1ab })]).toEqual([0xab, 0xab, 0xab, 0xab]);
  });
  test.prop([fc.integer(), fc.integer({ min: 1, max: 4096 })])('is deterministic and seed-dependent', (seed, length) => {
    const op: WriteOp = { kind: 'write', offset: 0, length, pattern: 0, seed };
    expect(writeBytes(op)).toEqual(writeBytes(op));
    if (length >= 16) expect(writeBytes(op)).not.toEqual(writeBytes({ ...op, seed: seed + 1 }));
  });
});

describe('formatOp', () => {
  it('prints qemu-io syntax', () => {
    expect(formatOp({ kind: 'write', offset: 65536, length: 4096, pattern: 0xab })).toBe('write -P 0xab 0x10000 0x1000');
    expect(formatOp({ kind: 'writeZeroes', offset: 0, length: 512, unmap: true })).toBe('write -z -u 0x0 0x200');
    expect(formatOp({ kind: 'snapshotRevert', name: 'a' })).toBe('snapshot -a a');
  });

  it('quotes snapshot names a shell would not pass as one word, the empty name included', () => {
    expect(formatOp({ kind: 'snapshotCreate', name: '' })).toBe("snapshot -c ''");
    expect(formatOp({ kind: 'snapshotDelete', name: '2' })).toBe('snapshot -d 2');
    expect(formatOp({ kind: 'snapshotRevert', name: "it's a b" })).toBe(`snapshot -a 'it'\\''s a b'`);
  });
});
