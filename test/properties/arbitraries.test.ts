// The generators reach the corners on purpose: at a fixed seed, sequences walked
// through the model alone (no implementation needed) hit every op kind, every
// outcome, every cluster kind incl. shared ones, L1 growth, refcount-table growth
// pressure and several snapshots alive at once.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chainOpKinds, expectedRefcounts, step, initialState, type ModelState } from '../../model/index.js';
import { commandKinds, emptyCoverage, imageOptions, isFaultStep, resolveRange, sequence, swarmWeights } from '../../properties/index.js';
import type { StepCommand } from '../../properties/commands/index.js';
import { l1Memory, recordChainRead, recordL1Corner, recordOutcome, recordSequenceStart, recordStep } from '../../properties/coverage.js';

const l1Entries = (s: ModelState) => Math.ceil(s.options.virtualSize / ((2 ** s.options.clusterBits) ** 2 / 8));

/** Host clusters the state needs at least (data + L2 tables), vs what one reftable cluster covers. */
function outgrowsOneReftableCluster(s: ModelState): boolean {
  const r = expectedRefcounts(s);
  const cs = 2 ** s.options.clusterBits;
  const reach = (cs / 8) * ((cs * 8) / s.options.refcountBits);
  return r.dataClusters.size + r.l2Tables.size > reach;
}

describe('generators', () => {
  it('build chains up to three backing files deep and reach through them, when chains are on', async () => {
    const cov = emptyCoverage();
    const samples = fc.sample(sequence({ swarm: { allOn: true }, chains: true, commandsCountMax: 60 }), { seed: 20261130, numRuns: 120 });
    for (const seq of samples) {
      // let the event loop turn between sequences (a loaded worker must still answer vitest's calls)
      await new Promise<void>((resolve) => setImmediate(resolve));
      let state = initialState(seq.options);
      for (const cmd of seq.commands as Iterable<StepCommand>) {
        const s = cmd.resolve(state);
        recordStep(cov, state, s);
        if (s.kind === 'read' || isFaultStep(s)) continue;
        const next = step(state, s);
        recordOutcome(cov, next.outcome, next.state, s);
        state = next.state;
      }
      recordChainRead(cov, state, 0, state.options.virtualSize);
    }
    for (const kind of chainOpKinds) expect(cov.opsByKind[kind] ?? 0, kind).toBeGreaterThan(0);
    const labels = ['overlay:qcow2', 'overlay:raw', 'rebase:safe', 'rebase:unsafe', 'commit', 'cow-from-backing', 'zero-over-backing', 'partial-zero-over-backing'];
    for (const depth of [1, 2, 3]) labels.push(`read-through:depth-${depth}`, `sequences-at-depth:${depth}`);
    for (const label of labels) expect(cov.chains[label] ?? 0, `${label} in ${JSON.stringify(cov.chains)}`).toBeGreaterThan(0);
  });

  it('reach every corner at a fixed seed', () => {
    const cov = emptyCoverage();
    let l1Growths = 0;
    let reftablePressure = 0;
    let overflowWith1Bit = 0;
    const samples = fc.sample(sequence({ swarm: { allOn: true }, commandsCountMax: 60 }), { seed: 20261125, numRuns: 150 });
    for (const seq of samples) {
      recordSequenceStart(cov, seq.options, seq.swarm);
      let state = initialState(seq.options);
      const l1 = l1Memory(seq.options);
      for (const cmd of seq.commands as Iterable<StepCommand>) {
        const s = cmd.resolve(state);
        recordStep(cov, state, s);
        if (s.kind === 'read' || isFaultStep(s)) continue;
        const next = step(state, s);
        recordOutcome(cov, next.outcome, next.state);
        recordL1Corner(cov, l1, state, s, next.outcome, next.state);
        if (l1Entries(next.state) > l1Entries(state)) l1Growths++;
        if (!next.outcome.ok && next.outcome.error === 'refcount-overflow' && seq.options.refcountBits === 1) overflowWith1Bit++;
        state = next.state;
        if (outgrowsOneReftableCluster(state)) reftablePressure++;
      }
    }
    for (const kind of commandKinds) expect(cov.opsByKind[kind] ?? 0, kind).toBeGreaterThan(0);
    // chain ops only when asked for (below)
    for (const kind of chainOpKinds) expect(cov.opsByKind[kind] ?? 0, kind).toBe(0);
    for (const outcome of ['ok', 'out-of-range', 'invalid-argument', 'unknown-snapshot', 'unsupported', 'refcount-overflow']) {
      expect(cov.outcomes[outcome] ?? 0, outcome).toBeGreaterThan(0);
    }
    for (const kind of ['unallocated', 'zero-plain', 'zero-alloc', 'normal', 'normal-shared', 'zero-alloc-shared']) {
      expect(cov.clusterKinds[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(cov.snapshotsAliveMax).toBeGreaterThanOrEqual(3);
    // names that look like IDs, duplicates and the empty name, for every snapshot command
    for (const label of ['create:word', 'create:id-like', 'create:empty', 'create:duplicate']) {
      expect(cov.snapshotLookups[label] ?? 0, label).toBeGreaterThan(0);
    }
    for (const command of ['revert', 'delete']) {
      for (const label of ['id-and-name-differ', 'id-only', 'duplicate-name', 'empty-name', 'name', 'missing']) {
        expect(cov.snapshotLookups[`${command}:${label}`] ?? 0, `${command}:${label}`).toBeGreaterThan(0);
      }
    }
    // the L1 table outgrows a cluster with snapshots alive, then a revert or delete follows
    for (const label of ['crossed', 'then-revert', 'then-delete']) {
      expect(cov.l1ClusterCrossings[label] ?? 0, label).toBeGreaterThan(0);
    }
    // zstd images are drawn, and only as version 3 (compat 0.10 has no compression_type)
    expect(cov.compressionTypes.zstd ?? 0).toBeGreaterThan(0);
    expect(cov.compressionTypes.zlib ?? 0).toBeGreaterThan(0);
    expect(samples.filter((seq) => seq.options.version === 2 && seq.options.compressionType !== 'zlib')).toEqual([]);
    expect(l1Growths).toBeGreaterThan(0);
    expect(overflowWith1Bit).toBeGreaterThan(0);
    expect(reftablePressure).toBeGreaterThan(0);
  });

  it('the L1-cluster corner shrinks away: a failure needing one snapshot command shrinks to that one command', () => {
    // v3 with 512 B clusters: the corner is spliced into two sequences in three
    // (also where the sequence's swarm drew snapshots or resize off)
    const arbitrary = sequence({ image: { versions: [3], clusterBitsMax: 9 } });
    const kinds = (seq: { commands: Iterable<unknown> }) => [...(seq.commands as Iterable<StepCommand>)].map((c) => c.constructor.name);
    const samples = fc.sample(arbitrary, { seed: 5, numRuns: 60 });
    const withCorner = samples.filter((seq) => kinds(seq).includes('ResizeCommand')).length;
    expect(withCorner).toBeGreaterThan(samples.length / 2);
    const out = fc.check(fc.property(arbitrary, (seq) => !kinds(seq).includes('SnapshotCreateCommand')), { seed: 5 });
    expect(out.failed).toBe(true);
    expect(kinds(out.counterexample![0])).toEqual(['SnapshotCreateCommand']);
  });

  it('draws both versions, every refcount width, small and 2 MiB clusters, unaligned sizes', () => {
    const options = fc.sample(imageOptions(), { seed: 7, numRuns: 400 });
    expect(new Set(options.map((o) => o.version))).toEqual(new Set([2, 3]));
    expect(new Set(options.filter((o) => o.version === 3).map((o) => o.refcountBits))).toEqual(new Set([1, 2, 4, 8, 16, 32, 64]));
    expect(options.every((o) => o.version === 3 || (o.refcountBits === 16 && !o.lazyRefcounts))).toBe(true);
    expect(options.every((o) => o.virtualSize % 512 === 0 && o.virtualSize > 0)).toBe(true);
    const bits = options.map((o) => o.clusterBits);
    expect(bits.filter((b) => b === 9).length).toBeGreaterThan(options.length / 5);
    expect(bits).toContain(21);
    expect(options.some((o) => o.virtualSize % 2 ** o.clusterBits !== 0)).toBe(true);
    expect(options.some((o) => o.lazyRefcounts)).toBe(true);
  });

  it('switches some kinds off in some sequences, never writes by default', () => {
    const swarms = fc.sample(swarmWeights(), { seed: 3, numRuns: 100 });
    expect(swarms.every((w) => w.write > 0)).toBe(true);
    expect(swarms.some((w) => w.discard === 0)).toBe(true);
    expect(swarms.some((w) => w.snapshotCreate === 0)).toBe(true);
  });

  it('resolves ranges inside the disk unless asked past the end', () => {
    const g = { virtualSize: 3 * 512 + 512, clusterSize: 1024, l2EntriesCount: 128 };
    fc.assert(
      fc.property(fc.record({ anchor: fc.constantFrom('first', 'random', 'l2-boundary', 'last', 'end' as const), intra: fc.constantFrom('aligned', 'sector', 'unaligned' as const), length: fc.constantFrom('sub-cluster', 'one-cluster', 'multi-cluster', 'bulk', 'to-end', 'past-end' as const), a: fc.nat(), b: fc.nat(), c: fc.nat() }), (spec) => {
        const { offset, length } = resolveRange(spec, g);
        expect(length).toBeGreaterThan(0);
        expect(offset).toBeLessThan(g.virtualSize);
        if (spec.length === 'past-end') expect(offset + length).toBeGreaterThan(g.virtualSize);
        else expect(offset + length).toBeLessThanOrEqual(g.virtualSize);
      }),
    );
  });
});

describe('kinds switched off', () => {
  it('never appear, not even in the L1-cluster corner (an implementation that declares no snapshots gets none)', () => {
    const samples = fc.sample(
      sequence({ image: { versions: [3], clusterBitsMin: 9, clusterBitsMax: 9 }, swarm: { off: ['snapshotCreate', 'snapshotRevert', 'snapshotDelete'] }, commandsCountMax: 30 }),
      { seed: 16, numRuns: 200 },
    );
    const seen = new Set<string>();
    for (const seq of samples) {
      let state = initialState(seq.options);
      for (const cmd of seq.commands as Iterable<StepCommand>) {
        const s = cmd.resolve(state);
        seen.add(s.kind);
        if (s.kind !== 'read' && !isFaultStep(s)) state = step(state, s).state;
      }
    }
    expect(seen.has('resize')).toBe(true);
    expect([...seen].filter((k) => k.startsWith('snapshot'))).toEqual([]);
  });
});
