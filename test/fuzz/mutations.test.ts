import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildBaseImage } from '../../corpus/mutants/base-image.js';
import { locate, readBE } from '../../corpus/mutants/layout.js';
import { applyPatches, mutationArb, resolveMutations } from '../../corpus/mutants/mutations.js';
import type { BaseImageSpec } from '../../corpus/case/types.js';

// v3, 512-byte clusters, 16-bit refcounts, data in two L2 tables and one snapshot.
const spec: BaseImageSpec = {
  options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 },
  ops: [
    { kind: 'write', offset: 0, length: 1024, pattern: 0xaa },
    { kind: 'write', offset: 40960, length: 512, pattern: 0xbb },
    { kind: 'snapshotCreate', name: 'snap1' },
  ],
};

let base: Uint8Array;
beforeAll(async () => {
  base = await buildBaseImage(spec);
});

describe('layout of a QEMU-written image', () => {
  it('finds the header extensions, tables and snapshot entries', () => {
    const layout = locate(base);
    expect(layout.clusterSize).toBe(512);
    // 512-byte clusters: no feature name table (QEMU writes it only above 4 KiB), just the end marker at 112.
    expect(layout.extensions).toEqual([{ offset: 112, type: 0, length: 0 }]);
    // 64 KiB / (512 * 64 entries per L2) = 2 L1 entries, both in use.
    expect(layout.entries.l1).toHaveLength(2);
    expect(layout.nonZeroCount.l1).toBe(2);
    expect(layout.nonZeroCount.l2).toBe(3);
    expect(layout.entries.l2).toHaveLength(128);
    expect(layout.snapshotEntries).toHaveLength(1);
    expect(layout.entries['snapshot-l1']).toHaveLength(2);
    expect(readBE(base, layout.entries.l2[0]!, 8) & 0x00fffffffffffe00n).not.toBe(0n);
  });
});

describe('mutations', () => {
  it('resolve to patches that rebuild the mutant from the base image', () => {
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (mutations) => {
        const resolved = resolveMutations(base, mutations);
        expect(applyPatches(base, resolved.patches, resolved.truncateTo)).toEqual(resolved.bytes);
        expect(resolveMutations(base, mutations)).toEqual(resolved);
      }),
      { numRuns: 40 },
    );
  });

  it('sets header fields absolutely and relative to the base value', () => {
    const abs = resolveMutations(base, [{ kind: 'header-field', field: 'cluster_bits', value: '0x16' }]);
    expect(abs.patches).toEqual([{ offset: 20, hex: '00000016' }]);
    const rel = resolveMutations(base, [{ kind: 'header-field', field: 'l1_size', value: '-1' }]);
    expect(readBE(rel.bytes, 36, 4)).toBe(1n);
  });

  it('aims even indexes at live entries and xors them', () => {
    const layout = locate(base);
    const live = layout.entries.l2[1]!;
    const { bytes } = resolveMutations(base, [{ kind: 'table-entry', table: 'l2', index: 2, xor: '0x8000000000000000' }]);
    expect(readBE(bytes, live, 8) ^ readBE(base, live, 8)).toBe(1n << 63n);
  });

  it('toggles feature bits, rewrites extension headers, truncates', () => {
    const toggled = resolveMutations(base, [{ kind: 'feature-bit', set: 'incompatible', bit: 4 }]);
    expect(readBE(toggled.bytes, 72, 8)).toBe(readBE(base, 72, 8) ^ 16n);
    const ext = resolveMutations(base, [{ kind: 'extension', index: 0, type: 0x12345678, length: 0xffffffff }]);
    expect(ext.patches).toEqual([{ offset: 112, hex: '12345678ffffffff' }]);
    const cut = resolveMutations(base, [{ kind: 'truncate', keepPermille: 500 }]);
    expect(cut.bytes.length).toBe(Math.floor(base.length / 2));
    expect(cut.truncateTo).toBe(Math.floor(base.length / 2));
  });

  it('wraps indexes around the targets that exist, and resolves to nothing without a target', () => {
    expect(resolveMutations(base, [{ kind: 'snapshot-field', snapshot: 3, field: 'l1_size', value: '0' }]).patches).toHaveLength(1);
    const empty = resolveMutations(new Uint8Array(0), [{ kind: 'byte-flip', offset: 5, xor: 1 }]);
    expect(empty.patches).toEqual([]);
  });
});
