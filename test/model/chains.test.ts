// The model's backing-chain rules (docs/semantics.md, Backing chains) on small
// hand-made chains; the same cases run against QEMU in
// test/properties/chains.test.ts.
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { backingLayers, guestClusterKind, initialState, modelMap, read, step, type ImageOptions, type ModelState, type Op } from '../../model/index.js';

const cs = 4096;
const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 16 * cs };
const v2: ImageOptions = { ...v3, version: 2 };

function run(state: ModelState, ops: readonly Op[]): ModelState {
  for (const op of ops) {
    const r = step(state, op);
    expect(r.outcome, JSON.stringify(op)).toEqual({ ok: true });
    state = r.state;
  }
  return state;
}

/** A base of `base` options filled with 0xaa, with an empty overlay of `top` options. */
function overlay(base: ImageOptions, top: ImageOptions, format: 'qcow2' | 'raw' = 'qcow2'): ModelState {
  return run(initialState(base), [
    { kind: 'write', offset: 0, length: base.virtualSize, pattern: 0xaa },
    { kind: 'createOverlay', backingFormat: format, options: top },
  ]);
}

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

describe('backing chains in the model', () => {
  it('reads fall through to each depth, zeros past a backing file, and map names the depth', () => {
    let s = overlay({ ...v3, virtualSize: 4 * cs }, { ...v3, virtualSize: 8 * cs }, 'raw');
    s = run(s, [
      { kind: 'write', offset: cs, length: cs, pattern: 0xbb },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 8 * cs } },
      { kind: 'writeZeroes', offset: 2 * cs, length: cs, unmap: false },
    ]);
    expect(backingLayers(s).map((l) => l.format)).toEqual(['qcow2', 'raw']);
    expect(read(s, 0, 4 * cs)).toEqual(new Uint8Array([...fill(cs, 0xaa), ...fill(cs, 0xbb), ...fill(cs, 0), ...fill(cs, 0xaa)]));
    expect(modelMap(s)).toEqual([
      { start: 0, length: cs, kind: 'data', depth: 2 },
      { start: cs, length: cs, kind: 'data', depth: 1 },
      { start: 2 * cs, length: cs, kind: 'zero', depth: 0 },
      { start: 3 * cs, length: cs, kind: 'data', depth: 2 },
      // past the raw file's end: the middle layer is where the walk stops
      { start: 4 * cs, length: 4 * cs, kind: 'unallocated', depth: 1 },
    ]);
  });

  it('a partial write copies the rest of the cluster from the backing file', () => {
    const s = run(overlay(v3, v3), [{ kind: 'write', offset: 0x100, length: 0x100, pattern: 0xbb }]);
    expect(read(s, 0, cs)).toEqual(new Uint8Array([...fill(0x100, 0xaa), ...fill(0x100, 0xbb), ...fill(cs - 0x200, 0xaa)]));
    expect(guestClusterKind(s, 0)).toBe('normal');
  });

  it.each([
    [3, ['zero-plain', 'zero-plain', 'normal', 'zero-plain', 'zero-plain']],
    [2, ['normal', 'normal', 'normal', 'unallocated', 'normal']],
  ] as const)('v%i: write-zeroes (whole, -u, partial) and discard (unallocated, written) over backing data', (version, kinds) => {
    const o = version === 2 ? v2 : v3;
    const s = run(overlay(o, o), [
      { kind: 'writeZeroes', offset: 0, length: cs, unmap: false },
      { kind: 'writeZeroes', offset: cs, length: cs, unmap: true },
      { kind: 'writeZeroes', offset: 2 * cs + 0x100, length: 0x100, unmap: false },
      { kind: 'discard', offset: 3 * cs, length: cs },
      { kind: 'write', offset: 4 * cs, length: cs, pattern: 0xcc },
      { kind: 'discard', offset: 4 * cs, length: cs },
    ]);
    expect([0, 1, 2, 3, 4].map((c) => guestClusterKind(s, c))).toEqual(kinds);
    expect(read(s, 2 * cs, 0x200)).toEqual(new Uint8Array([...fill(0x100, 0xaa), ...fill(0x100, 0)]));
    // v3 discards mask the backing file; v2 leaves the written cluster as it was
    expect(read(s, 3 * cs, 2 * cs)).toEqual(version === 3 ? fill(2 * cs, 0) : new Uint8Array([...fill(cs, 0xaa), ...fill(cs, 0xcc)]));
  });

  it('a partial write-zeroes over zeros of the chain zeroizes the whole cluster (v3)', () => {
    // the backing file ends at 2 clusters: past it the chain reads zero by block status
    const s = run(overlay({ ...v3, virtualSize: 2 * cs }, v3), [{ kind: 'writeZeroes', offset: 3 * cs + 0x100, length: 0x100, unmap: false }]);
    expect(guestClusterKind(s, 3)).toBe('zero-plain');
  });

  it.each([3, 2] as const)('v%i: growing over a longer backing file zeroes the new range (v2 refuses)', (version) => {
    const o = version === 2 ? v2 : v3;
    const s = overlay(o, { ...o, virtualSize: 30 * 512 });
    const grown = step(s, { kind: 'resize', size: 20 * 512 * 4 });
    if (version === 2) {
      expect(grown.outcome).toMatchObject({ ok: false, error: 'unsupported' });
      expect(grown.state).toBe(s);
      return;
    }
    expect(read(grown.state, 0, 40 * 512)).toEqual(new Uint8Array([...fill(30 * 512, 0xaa), ...fill(10 * 512, 0)]));
    expect(guestClusterKind(grown.state, 3)).toBe('normal');
    expect(guestClusterKind(grown.state, 4)).toBe('zero-plain');
    // not longer than the old size: nothing to mask
    const past = run(overlay({ ...o, virtualSize: 2 * cs }, { ...o, virtualSize: 4 * cs }), [{ kind: 'resize', size: 8 * cs }]);
    expect(modelMap(past).at(-1)).toEqual({ start: 2 * cs, length: 6 * cs, kind: 'unallocated', depth: 0 });
  });

  it('safe rebase keeps the guest view and copies only what differs; -u changes the backing file only', () => {
    let s = run(initialState(v3), [
      { kind: 'write', offset: 0, length: 4 * cs, pattern: 0xaa },
      { kind: 'writeZeroes', offset: 4 * cs, length: cs, unmap: false },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
      { kind: 'write', offset: 2 * cs, length: cs, pattern: 0xbb },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
      { kind: 'write', offset: 3 * cs, length: cs, pattern: 0xcc },
    ]);
    const before = read(s, 0, v3.virtualSize);
    const ontoBase = run(s, [{ kind: 'rebase', depth: 2, unsafe: false }]);
    expect(read(ontoBase, 0, v3.virtualSize)).toEqual(before);
    expect([0, 1, 2, 3, 4].map((c) => guestClusterKind(ontoBase, c))).toEqual(['unallocated', 'unallocated', 'normal', 'normal', 'unallocated']);
    const ontoNothing = run(s, [{ kind: 'rebase', depth: 0, unsafe: false }]);
    expect(read(ontoNothing, 0, v3.virtualSize)).toEqual(before);
    expect(ontoNothing.backing).toBeUndefined();
    expect([0, 1, 2, 3, 4].map((c) => guestClusterKind(ontoNothing, c))).toEqual(['normal', 'normal', 'normal', 'normal', 'unallocated']);
    s = run(s, [{ kind: 'rebase', depth: 2, unsafe: true }]);
    expect(read(s, 2 * cs, cs)).toEqual(fill(cs, 0xaa));
    expect(step(s, { kind: 'rebase', depth: 2, unsafe: false }).outcome).toMatchObject({ ok: false, error: 'invalid-argument' });
  });

  it('commit writes the allocated clusters into the backing file and empties the image', () => {
    const base: ImageOptions = { ...v3, virtualSize: 8 * cs };
    const s = run(overlay(base, { ...v3, virtualSize: 12 * cs }), [
      { kind: 'write', offset: 0, length: cs, pattern: 0xbb },
      { kind: 'writeZeroes', offset: cs, length: cs, unmap: false },
      { kind: 'write', offset: 10 * cs, length: cs, pattern: 0xcc },
      { kind: 'commit' },
    ]);
    expect(s.active).toEqual([]);
    const layer = s.backing;
    if (layer?.format !== 'qcow2') throw new Error('expected a qcow2 backing file');
    expect(layer.image.options.virtualSize).toBe(12 * cs);
    expect([0, 1, 2, 8, 10].map((c) => guestClusterKind(layer.image, c))).toEqual(['normal', 'zero-plain', 'normal', 'unallocated', 'normal']);
    expect(read(s, 0, 3 * cs)).toEqual(new Uint8Array([...fill(cs, 0xbb), ...fill(cs, 0), ...fill(cs, 0xaa)]));
    expect(step(initialState(v3), { kind: 'commit' }).outcome).toMatchObject({ ok: false, error: 'invalid-argument' });
  });

  test.prop([fc.array(fc.record({ offset: fc.nat({ max: 15 }), pattern: fc.nat({ max: 255 }) }), { maxLength: 6 }), fc.nat({ max: 2 }), fc.boolean()], { numRuns: 15 })(
    'safe rebase and commit never change what the guest reads',
    async (writes, depth, unsafeFirst) => {
      // let the event loop turn between runs (a loaded worker must still answer vitest's calls)
      await new Promise<void>((resolve) => setImmediate(resolve));
      let s = overlay(v3, { ...v3, virtualSize: 12 * cs });
      s = run(s, [{ kind: 'createOverlay', backingFormat: 'qcow2', options: v3 }, ...writes.map((w): Op => ({ kind: 'write', offset: w.offset * cs + 0x80, length: 0x80, pattern: w.pattern }))]);
      if (unsafeFirst) s = run(s, [{ kind: 'rebase', depth: 1, unsafe: true }]);
      const before = read(s, 0, v3.virtualSize);
      expect(read(run(s, [{ kind: 'rebase', depth, unsafe: false }]), 0, v3.virtualSize)).toEqual(before);
      expect(read(run(s, [{ kind: 'commit' }]), 0, v3.virtualSize)).toEqual(before);
    },
  );
});
