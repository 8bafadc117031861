import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  expectedRefcounts,
  guestClusterKind,
  initialState,
  modelMap,
  read,
  step,
  writeBytes,
  type ImageOptions,
  type ModelState,
  type Op,
} from '../../model/index.js';

const v3: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 8192 };

function run(state: ModelState, ops: readonly Op[]): ModelState {
  for (const op of ops) state = step(state, op).state;
  return state;
}

// Options with small clusters so that ops span clusters and L2 tables (512 B
// clusters: one L2 table covers 32 KiB).
const optionsArb: fc.Arbitrary<ImageOptions> = fc
  .record({
    version: fc.constantFrom(2 as const, 3 as const),
    clusterBits: fc.constantFrom(9, 10, 12),
    refcountBits: fc.constantFrom(1, 2, 4, 16, 64),
    sectors: fc.integer({ min: 1, max: 200 }),
  })
  .map(({ version, clusterBits, refcountBits, sectors }) => ({
    version,
    clusterBits,
    refcountBits: version === 2 ? 16 : refcountBits,
    lazyRefcounts: false,
    virtualSize: sectors * 512,
  }));

function opArb(size: number): fc.Arbitrary<Op> {
  const range = fc.integer({ min: 0, max: size - 1 }).chain((offset) =>
    fc.record({ offset: fc.constant(offset), length: fc.integer({ min: 1, max: Math.min(size - offset, 3000) }) }),
  );
  const name = fc.constantFrom('a', 'b', 'c');
  return fc.oneof(
    range.chain((r) => fc.record({ kind: fc.constant('write' as const), ...mapRange(r), pattern: fc.integer({ min: 0, max: 255 }), seed: fc.option(fc.integer(), { nil: undefined }) })),
    range.chain((r) => fc.record({ kind: fc.constant('writeZeroes' as const), ...mapRange(r), unmap: fc.boolean() })),
    range.map((r) => ({ kind: 'discard' as const, ...r })),
    fc.integer({ min: 0, max: 2 * size / 512 }).map((n) => ({ kind: 'resize' as const, size: n * 512 })),
    name.map((n) => ({ kind: 'snapshotCreate' as const, name: n })),
    name.map((n) => ({ kind: 'snapshotRevert' as const, name: n })),
    name.map((n) => ({ kind: 'snapshotDelete' as const, name: n })),
    fc.constant({ kind: 'flush' as const }),
  );
}
function mapRange(r: { offset: number; length: number }) {
  return { offset: fc.constant(r.offset), length: fc.constant(r.length) };
}
const scenarioArb = optionsArb.chain((options) => fc.record({ options: fc.constant(options), ops: fc.array(opArb(options.virtualSize), { maxLength: 25 }) }));

/** Every L2 table and data cluster referenced exactly as often as expectedRefcounts says, by an independent walk. */
function naiveCounts(state: ModelState) {
  const tables = new Map<number, number>();
  const data = new Map<number, number>();
  for (const l1 of [state.active, ...state.snapshots.map((s) => s.l1)]) {
    for (const t of l1) {
      if (!t) continue;
      tables.set(t.id, (tables.get(t.id) ?? 0) + 1);
      for (const e of t.entries.values()) if (e.kind !== 'zero-plain') data.set(e.data.id, (data.get(e.data.id) ?? 0) + 1);
    }
  }
  return { tables, data };
}

describe('model step', () => {
  test.prop([scenarioArb, fc.integer(), fc.integer({ min: 0, max: 255 })])('write then read returns the data', ({ options, ops }, seed, pattern) => {
    let state = run(initialState(options), ops);
    const size = state.options.virtualSize;
    if (size === 0) return;
    const offset = Math.abs(seed) % size;
    const length = 1 + (Math.abs(seed >> 3) % (size - offset));
    const op = { kind: 'write' as const, offset, length, pattern, seed };
    state = step(state, op).state;
    expect(read(state, offset, length)).toEqual(writeBytes(op));
  });

  test.prop([scenarioArb, fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 10 })])('snapshot then revert restores the content', ({ options, ops }, after) => {
    let state = run(initialState({ ...options, refcountBits: 16 }), ops);
    const before = read(state, 0, state.options.virtualSize);
    const created = step(state, { kind: 'snapshotCreate', name: 'keep' });
    expect(created.outcome.ok).toBe(true);
    state = created.state;
    const more = opArb(state.options.virtualSize).filter((o) => o.kind !== 'snapshotDelete');
    state = run(state, fc.sample(more, { numRuns: after.length, seed: after.reduce((a, b) => a * 7 + b, 1) }));
    const id = state.snapshots.find((s) => s.name === 'keep')!.id;
    const reverted = step(state, { kind: 'snapshotRevert', name: id });
    if (state.options.version === 2 && reverted.outcome.ok === false) return;
    expect(reverted.outcome).toEqual({ ok: true });
    expect(reverted.state.options.virtualSize).toBe(before.length);
    expect(read(reverted.state, 0, before.length)).toEqual(before);
  });

  test.prop([scenarioArb])('refcounts equal references after any sequence; COPIED = refcount 1', ({ options, ops }) => {
    const state = run(initialState(options), ops);
    const expected = expectedRefcounts(state);
    const naive = naiveCounts(state);
    expect(expected.l2Tables).toEqual(new Map([...naive.tables].filter(([, n]) => n > 0)));
    for (const [id, n] of expected.dataClusters) if (n > 0) expect(naive.data.get(id)).toBe(n);
    for (const [id, n] of naive.data) expect(expected.dataClusters.get(id)).toBe(n);
    const max = options.refcountBits >= 53 ? Infinity : 2 ** options.refcountBits - 1;
    for (const n of [...naive.tables.values(), ...naive.data.values()]) expect(n).toBeLessThanOrEqual(max);
  });

  test.prop([scenarioArb])('deleting every snapshot brings every refcount back to 1', ({ options, ops }) => {
    let state = run(initialState(options), ops);
    // -d takes a name (the first snapshot with it, so always snapshots[0] here)
    while (state.snapshots[0]) {
      const deleted = step(state, { kind: 'snapshotDelete', name: state.snapshots[0].name });
      expect(deleted.outcome.ok).toBe(true);
      state = deleted.state;
    }
    const expected = expectedRefcounts(state);
    for (const n of [...expected.l2Tables.values(), ...expected.dataClusters.values()]) if (n > 0) expect(n).toBe(1);
    for (const copied of [...expected.activeL1Copied.values(), ...expected.activeL2Copied.values()]) expect(copied).toBe(true);
  });

  test.prop([scenarioArb, fc.integer({ min: 1, max: 64 })])('growing then reading the new range returns zeros', ({ options, ops }, sectors) => {
    const state = run(initialState(options), ops);
    const old = state.options.virtualSize;
    const grown = step(state, { kind: 'resize', size: old + sectors * 512 });
    if (!grown.outcome.ok) {
      expect(grown.outcome.error).toBe('unsupported');
      return;
    }
    expect(read(grown.state, old, sectors * 512)).toEqual(new Uint8Array(sectors * 512));
    expect(read(grown.state, 0, old)).toEqual(read(state, 0, old));
  });

  test.prop([scenarioArb, opArb(4096)])('step never mutates its input state', ({ options, ops }, last) => {
    const state = run(initialState(options), ops);
    const before = serialise(state);
    step(state, last);
    expect(serialise(state)).toBe(before);
  });
});

function serialise(state: ModelState): string {
  return JSON.stringify(state, (_key, value: unknown) =>
    value instanceof Map ? [...value.entries()] : value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value,
  );
}

describe('model rules (docs/semantics.md)', () => {
  it('refuses out-of-range writes and bad resizes without change', () => {
    const s = initialState(v3);
    expect(step(s, { kind: 'write', offset: 8000, length: 200, pattern: 1 })).toMatchObject({ state: s, outcome: { ok: false, error: 'out-of-range' } });
    expect(step(s, { kind: 'resize', size: 1000 }).outcome).toMatchObject({ ok: false, error: 'invalid-argument' });
    expect(step(s, { kind: 'snapshotRevert', name: 'x' }).outcome).toMatchObject({ ok: false, error: 'unknown-snapshot' });
    // qemu-io 7.2 accepts zero-length requests as no-ops.
    expect(step(s, { kind: 'write', offset: 0, length: 0, pattern: 1 })).toEqual({ state: s, outcome: { ok: true } });
    expect(step(s, { kind: 'discard', offset: 8192, length: 0 })).toEqual({ state: s, outcome: { ok: true } });
    expect(step(s, { kind: 'writeZeroes', offset: -1, length: 1, unmap: false }).outcome).toMatchObject({ ok: false, error: 'invalid-argument' });
  });

  it('zero-writes keep the data cluster without unmap and drop it with unmap', () => {
    let s = step(initialState(v3), { kind: 'write', offset: 0, length: 1024, pattern: 7 }).state;
    s = step(s, { kind: 'writeZeroes', offset: 0, length: 512, unmap: false }).state;
    s = step(s, { kind: 'writeZeroes', offset: 512, length: 512, unmap: true }).state;
    expect([guestClusterKind(s, 0), guestClusterKind(s, 1), guestClusterKind(s, 2)]).toEqual(['zero-alloc', 'zero-plain', 'unallocated']);
    expect(modelMap(s).map(({ depth: _depth, ...r }) => r)).toEqual([
      { start: 0, length: 1024, kind: 'zero' },
      { start: 1024, length: 7168, kind: 'unallocated' },
    ]);
  });

  it('a partial zero-write on an unallocated cluster zeroizes the whole cluster, on a normal one writes zeros', () => {
    let s = step(initialState(v3), { kind: 'write', offset: 512, length: 512, pattern: 7 }).state;
    s = step(s, { kind: 'writeZeroes', offset: 100, length: 600, unmap: false }).state;
    expect([guestClusterKind(s, 0), guestClusterKind(s, 1)]).toEqual(['zero-plain', 'normal']);
    expect(read(s, 512, 512)).toEqual(new Uint8Array(512).fill(7, 188));
  });

  it('v2 zero-writes are discards and discard ignores partial clusters', () => {
    let s = step(initialState({ ...v3, version: 2 }), { kind: 'write', offset: 0, length: 2048, pattern: 7 }).state;
    s = step(s, { kind: 'writeZeroes', offset: 0, length: 512, unmap: false }).state;
    s = step(s, { kind: 'discard', offset: 600, length: 1000 }).state;
    expect([0, 1, 2, 3].map((c) => guestClusterKind(s, c))).toEqual(['unallocated', 'normal', 'unallocated', 'normal']);
  });

  it('a shared cluster is copied on write and the snapshot keeps the old data', () => {
    let s = step(initialState(v3), { kind: 'write', offset: 0, length: 512, pattern: 1 }).state;
    s = step(s, { kind: 'snapshotCreate', name: 'a' }).state;
    expect(expectedRefcounts(s).activeL2Copied.get(0)).toBe(false);
    s = step(s, { kind: 'write', offset: 0, length: 1, pattern: 2 }).state;
    const r = expectedRefcounts(s);
    expect([...r.l2Tables.values()].sort()).toEqual([0, 1, 1].slice(r.l2Tables.size === 2 ? 1 : 0));
    expect(r.activeL2Copied.get(0)).toBe(true);
    expect(read(s, 0, 2)).toEqual(new Uint8Array([2, 1]));
    const back = step(s, { kind: 'snapshotRevert', name: 'a' }).state;
    expect(read(back, 0, 2)).toEqual(new Uint8Array([1, 1]));
  });

  it('refuses a snapshot that would overflow 1-bit refcounts and changes nothing', () => {
    const s = step(initialState({ ...v3, refcountBits: 1 }), { kind: 'write', offset: 0, length: 1, pattern: 1 }).state;
    expect(step(s, { kind: 'snapshotCreate', name: 'a' })).toMatchObject({ state: s, outcome: { ok: false, error: 'refcount-overflow' } });
    expect(step(initialState({ ...v3, refcountBits: 1 }), { kind: 'snapshotCreate', name: 'a' }).outcome.ok).toBe(true);
  });

  it('assigns IDs as max numeric ID + 1; -d finds a name only, -a an ID before a name', () => {
    let s = initialState(v3);
    s = run(s, [
      { kind: 'write', offset: 0, length: 512, pattern: 1 },
      { kind: 'snapshotCreate', name: '2' },
      { kind: 'write', offset: 0, length: 512, pattern: 2 },
      { kind: 'snapshotCreate', name: 'x' },
    ]);
    expect(step(s, { kind: 'snapshotDelete', name: '1' })).toMatchObject({ state: s, outcome: { ok: false, error: 'unknown-snapshot' } });
    expect(read(step(s, { kind: 'snapshotRevert', name: '2' }).state, 0, 1)).toEqual(new Uint8Array([2]));
    s = run(s, [
      { kind: 'snapshotDelete', name: '2' },
      { kind: 'snapshotCreate', name: 'y' },
    ]);
    expect(s.snapshots.map((x) => [x.id, x.name])).toEqual([['2', 'x'], ['3', 'y']]);
  });

  it('grow after an unaligned shrink does not resurface old bytes', () => {
    let s = step(initialState(v3), { kind: 'write', offset: 0, length: 1024, pattern: 9 }).state;
    s = step(s, { kind: 'resize', size: 512 + 0 }).state;
    s = step(s, { kind: 'resize', size: 1024 }).state;
    expect(read(s, 0, 1024)).toEqual(new Uint8Array(1024).fill(9, 0, 512));
  });
});

describe('revert to a snapshot of another size', () => {
  it('checks refcount overflow on the counts QEMU sees: its plain truncate copies no shared last cluster (2-bit refcounts)', () => {
    // qemu-img 7.2: write 0xc0000 0x40000, snapshot base, snapshot 1, resize --shrink 0xffe00, snapshot -a 1
    // → "Could not apply snapshot '1': Failed to load snapshot: Invalid argument" (the shared cluster would reach 4)
    for (const extendedL2 of [false, true]) {
      const options = { version: 3 as const, clusterBits: 18, refcountBits: 2, lazyRefcounts: false, virtualSize: 0x100000, ...(extendedL2 ? { extendedL2 } : {}) };
      let state = initialState(options);
      for (const op of [
        { kind: 'write' as const, offset: 0xc0000, length: 0x40000, pattern: 0 },
        { kind: 'snapshotCreate' as const, name: 'base' },
        { kind: 'snapshotCreate' as const, name: '1' },
        { kind: 'resize' as const, size: 0xffe00 },
      ]) {
        const r = step(state, op);
        expect(r.outcome.ok).toBe(true);
        state = r.state;
      }
      const revert = step(state, { kind: 'snapshotRevert', name: '1' });
      expect(revert.outcome).toMatchObject({ ok: false, error: 'refcount-overflow' });
      expect(revert.state).toBe(state);
    }
  });
});
