// Backing chains against QEMU 7.2: hand-written sequences that reach each rule
// of docs/semantics.md (Backing chains) run on qemu-io / qemu-img through the
// QEMU driver, with reads, outcomes and the qemuJudges check (compare of the
// whole chain, map with depths, check of every qcow2 layer); then random
// chain sequences drawn by the generators.
import { describe, expect, it } from 'vitest';
import type { ImageOptions } from '../../model/index.js';
import { formatText, replayOps, runProperty, type Step } from '../../properties/index.js';

const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 };
const v2: ImageOptions = { ...v3, version: 2 };
const whole = (size: number): Step => ({ kind: 'read', offset: 0, length: size });

/** A base written all over, then an overlay of `top` options on it. */
function overBase(base: ImageOptions, top: ImageOptions, format: 'qcow2' | 'raw' = 'qcow2'): Step[] {
  return [
    { kind: 'write', offset: 0, length: base.virtualSize, pattern: 0, seed: 11 },
    { kind: 'createOverlay', backingFormat: format, options: top },
  ];
}

async function judged(options: ImageOptions, ops: readonly Step[], impl: 'qemu' | 'ts' = 'qemu') {
  const properties = impl === 'ts' ? (['readsAndOutcomes', 'structure', 'qemuJudges'] as const) : (['readsAndOutcomes', 'qemuJudges'] as const);
  const result = await replayOps({ impl, options, ops, properties: [...properties] });
  expect(result.status, formatText(result)).toBe('passed');
  return result;
}

describe('backing chains on QEMU', () => {
  it.each([
    ['v3', v3],
    ['v2', v2],
  ])('%s overlay: partial writes COW from the backing, write-zeroes and discard, whole and partial', async (_name, o) => {
    await judged(o, [
      ...overBase(o, o),
      { kind: 'write', offset: 0x100, length: 0x100, pattern: 0xbb },
      { kind: 'writeZeroes', offset: 0x1000, length: 0x1000, unmap: false },
      { kind: 'writeZeroes', offset: 0x2000, length: 0x1000, unmap: true },
      { kind: 'writeZeroes', offset: 0x3100, length: 0x100, unmap: false },
      { kind: 'discard', offset: 0x4000, length: 0x1000 },
      { kind: 'write', offset: 0x5000, length: 0x1000, pattern: 0xcc },
      { kind: 'discard', offset: 0x5000, length: 0x1000 },
      { kind: 'write', offset: 0x6000, length: 0x1000, pattern: 0xcc },
      { kind: 'writeZeroes', offset: 0x6000, length: 0x1000, unmap: false },
      whole(o.virtualSize),
    ]);
  });

  it.each([
    ['v3', v3],
    ['v2', v2],
  ])('%s overlay: resize under, over and past a longer backing file (v2 refuses to grow over it)', async (_name, o) => {
    const result = await judged(o, [
      ...overBase(o, { ...o, virtualSize: 32768 }),
      { kind: 'resize', size: 49152 },
      { kind: 'resize', size: 30720 },
      { kind: 'resize', size: 81920 },
      { kind: 'resize', size: 131072 },
      whole(32768),
    ]);
    // v2: 48 KiB, 80 KiB and 128 KiB from 32 KiB all grow over the 64 KiB backing file
    expect(result.coverage.outcomes.unsupported ?? 0).toBe(o.version === 2 ? 3 : 0);
  });

  it('a chain of three over a raw file reads through each depth; snapshots of an overlay', async () => {
    const result = await judged(v3, [
      ...overBase(v3, { ...v3, clusterBits: 9, virtualSize: 98304 }, 'raw'),
      { kind: 'write', offset: 0x2000, length: 0x1000, pattern: 0x22, seed: 5 },
      { kind: 'writeZeroes', offset: 0x4000, length: 0x800, unmap: true },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 40960 } },
      { kind: 'write', offset: 0x3000, length: 0x200, pattern: 0x33 },
      { kind: 'snapshotCreate', name: 's' },
      { kind: 'write', offset: 0x3000, length: 0x200, pattern: 0x44 },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v2, virtualSize: 131072 } },
      { kind: 'read', offset: 0, length: 0x9000 },
      whole(131072),
    ]);
    expect(Object.keys(result.coverage.chains)).toEqual(expect.arrayContaining(['read-through:depth-1', 'read-through:depth-2', 'read-through:depth-3']));
  });

  it('rebase safe and unsafe, onto a deeper layer and onto nothing', async () => {
    const chain: Step[] = [
      { kind: 'write', offset: 0, length: 0x4000, pattern: 0xaa },
      { kind: 'writeZeroes', offset: 0x4000, length: 0x1000, unmap: false },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
      { kind: 'write', offset: 0x2000, length: 0x1000, pattern: 0xbb },
      { kind: 'write', offset: 0x5000, length: 0x800, pattern: 0xbe },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, clusterBits: 9 } },
      { kind: 'write', offset: 0x3000, length: 0x1000, pattern: 0xcc },
    ];
    for (const rebase of [
      { kind: 'rebase', depth: 2, unsafe: false },
      { kind: 'rebase', depth: 0, unsafe: false },
      { kind: 'rebase', depth: 2, unsafe: true },
      { kind: 'rebase', depth: 1, unsafe: false },
    ] as const) {
      await judged(v3, [...chain, rebase, whole(v3.virtualSize)]);
    }
    // onto the base from a shorter middle layer: past its end the old chain reads zeros, the base data
    await judged(v3, [
      { kind: 'write', offset: 0, length: v3.virtualSize, pattern: 0xaa },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 32768 } },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
      { kind: 'rebase', depth: 2, unsafe: false },
      whole(v3.virtualSize),
    ]);
  });

  it('commit into a qcow2 backing file, v2 and v3, larger than it, with snapshots; refused without a backing file', async () => {
    for (const [base, top] of [
      [v3, { ...v3, virtualSize: 49152 }],
      [v2, { ...v2, virtualSize: 49152 }],
      [v3, { ...v3, clusterBits: 16, virtualSize: 196608 }],
    ] as const) {
      await judged(base, [
        { kind: 'commit' },
        { kind: 'write', offset: 0, length: 0x8000, pattern: 0xaa },
        { kind: 'createOverlay', backingFormat: 'qcow2', options: top },
        { kind: 'write', offset: 0, length: 0x1000, pattern: 0xbb },
        { kind: 'writeZeroes', offset: 0x1000, length: 0x1000, unmap: false },
        { kind: 'write', offset: 0xa000, length: 0x1000, pattern: 0xcc },
        { kind: 'writeZeroes', offset: 0xb000, length: 0x1000, unmap: false },
        { kind: 'commit' },
        { kind: 'write', offset: 0x2000, length: 0x1000, pattern: 0xdd },
        { kind: 'snapshotCreate', name: 'x' },
        { kind: 'commit' },
        whole(top.virtualSize),
      ]);
    }
  });

  it('the engine driver runs chains too: overlays (qcow2, raw), COW, zeroes, rebase and commit, judged by the structure check and QEMU', async () => {
    await judged(
      v3,
      [
        ...overBase(v3, { ...v3, clusterBits: 9, virtualSize: 98304 }, 'raw'),
        { kind: 'write', offset: 0x2100, length: 0x100, pattern: 0x22 },
        { kind: 'writeZeroes', offset: 0x4000, length: 0x1000, unmap: false },
        { kind: 'discard', offset: 0x5000, length: 0x1000 },
        { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 131072 } },
        { kind: 'write', offset: 0x3000, length: 0x200, pattern: 0x33 },
        { kind: 'reopen' },
        { kind: 'rebase', depth: 0, unsafe: false },
        { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
        { kind: 'write', offset: 0x1000, length: 0x1000, pattern: 0x44 },
        { kind: 'writeZeroes', offset: 0x2000, length: 0x1000, unmap: false },
        { kind: 'commit' },
        whole(v3.virtualSize),
      ],
      'ts',
    );
  });

  it('random chain sequences agree with the model and QEMU judges them', async () => {
    const result = await runProperty({ property: 'qemuJudges', impl: 'qemu', numRuns: 6, seed: 13, sequence: { commandsCountMax: 16, image: { clusterBitsMax: 16 } } });
    expect(result.status, formatText(result)).toBe('passed');
    expect((result.coverage.opsByKind.createOverlay ?? 0) + (result.coverage.opsByKind.rebase ?? 0) + (result.coverage.opsByKind.commit ?? 0)).toBeGreaterThan(0);
  });
});
