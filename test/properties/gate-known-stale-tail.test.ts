// QEMU 7.2's stale tail after a shrink then a grow (corpus
// qemu-readsAndOutcomes-read-read-35bb5b772efae66a.json, identity
// data/resize:ok), seen by the structure check or by a read after a later
// step (fuzz --impl qemu --time 3m --seed 515: reopen/structure/write, the
// byte at the old shrink point in snapshot 1's cluster 0), is that known
// divergence; a non-zero byte outside a grow's stale window is not. And the
// fix of ours that run found: a compressed last cluster whose tail already
// holds zeros is left compressed on a grow, as QEMU leaves it.
import { describe, expect, it } from 'vitest';
import { loadKnownQemuDivergences, matchKnownDivergence } from '../../cli/commands/gate-divergences.js';
import { attributeKnownStaleTail, nonZeroWhereZeroExpected } from '../../cli/commands/gate-known-stale-tail.js';
import { unalignedGrowths } from '../../corpus/case/fault.js';
import { defaultCorpusDir } from '../../corpus/store.js';
import { runFaultIdentity } from '../../corpus/replay/replay-case.js';
import { guestClusterKind, initialState, step, type ImageOptions } from '../../model/index.js';
import { replayOps, type RunResult } from '../../properties/index.js';
import type { Step } from '../../properties/steps.js';

const options: ImageOptions = { version: 3, clusterBits: 17, refcountBits: 8, lazyRefcounts: true, virtualSize: 262144, compressionType: 'zlib' };
/** Shrunk by hand from the fuzz case: random data in cluster 0, shrink to 109056 (inside it), grow, a snapshot, a later write. */
const staleThenSnapshot: Step[] = [
  { kind: 'write', offset: 0, length: 262144, pattern: 0, seed: 191433359 },
  { kind: 'resize', size: 109056 },
  { kind: 'resize', size: 359936 },
  { kind: 'snapshotCreate', name: '1' },
  { kind: 'write', offset: 262144, length: 512, pattern: 3 },
];

async function failing(property: 'reopen' | 'structure' | 'readsAndOutcomes', ops: Step[], opts: ImageOptions = options): Promise<Extract<RunResult, { status: 'property-failed' }>> {
  const run = await replayOps({ impl: 'qemu', options: opts, ops, properties: [property] });
  if (run.status !== 'property-failed') throw new Error(`QEMU 7.2 no longer exposes the stale tail here: ${run.status}`);
  return run;
}

describe('the stale tail seen by another check', () => {
  it('finds the byte and the grow windows', () => {
    expect(nonZeroWhereZeroExpected('[structure] after x: 1 guest cluster 2: expected byte 109056 of the cluster = 0x0, found 0xd6 (host 764416)', 17)).toBe(2 * 131072 + 109056);
    expect(nonZeroWhereZeroExpected('[read] at the end: guest offset 0x1aa00 reads [d6 aa], the model expects [00 00]', 17)).toBe(0x1aa00);
    // the model expects data there, or QEMU read zeros: no stale byte
    expect(nonZeroWhereZeroExpected('[read] at the end: guest offset 0x1aa00 reads [d6 aa], the model expects [01 00]', 17)).toBeUndefined();
    expect(nonZeroWhereZeroExpected('[structure] x: active guest cluster 0: expected byte 5 of the cluster = 0x7, found 0x0 (host 1)', 17)).toBeUndefined();
    expect(unalignedGrowths(options, staleThenSnapshot)).toEqual([{ index: 2, oldSize: 109056, staleEnd: 131072 }]);
  });

  it('the structure check of a later snapshot, the structure check after the grow and a read after a later write are the known divergence', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const bySnapshot = await failing('reopen', [...staleThenSnapshot.slice(0, 4), { kind: 'snapshotCreate', name: '2' }]);
    const structure = await failing('structure', staleThenSnapshot);
    expect(structure.failure.message).toBe('[structure] after truncate 0x57e00: active guest cluster 0: expected byte 109056 of the cluster = 0x0, found 0xd6 (host 764416)');
    expect(runFaultIdentity(structure)).toBe('structure/resize:ok');
    const byRead = await failing('readsAndOutcomes', staleThenSnapshot);
    expect(runFaultIdentity(byRead)).toBe('data/write:ok');
    for (const run of [bySnapshot, structure, byRead]) {
      expect(matchKnownDivergence(run, known), run.failure.message).toBeUndefined();
      expect((await attributeKnownStaleTail(run, known))?.identity, run.failure.message).toBe('data/resize:ok');
    }
  }, 300_000);

  it('a non-zero byte outside the window, or a window where QEMU shows no stale bytes, is not it', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const structure = await failing('structure', staleThenSnapshot);
    const at = (message: string, steps: Step[] = staleThenSnapshot): RunResult => ({ ...structure, counterexample: { options, steps }, failure: { kind: 'violation', check: 'structure', message } });
    // below the old end, and past the end of its cluster
    expect(await attributeKnownStaleTail(at('[structure] x: active guest cluster 0: expected byte 109055 of the cluster = 0x0, found 0xd6 (host 1)'), known)).toBeUndefined();
    expect(await attributeKnownStaleTail(at('[structure] x: active guest cluster 1: expected byte 0 of the cluster = 0x0, found 0xd6 (host 1)'), known)).toBeUndefined();
    // the same byte, but the shrunk cluster held zeros past the old end: QEMU exposes nothing there
    const zeroTail: Step[] = [{ kind: 'write', offset: 0, length: 512, pattern: 1 }, ...staleThenSnapshot.slice(1)];
    expect(await attributeKnownStaleTail(at(structure.failure.message, zeroTail), known)).toBeUndefined();
    // no grow at all
    expect(await attributeKnownStaleTail(at(structure.failure.message, [staleThenSnapshot[0] as Step]), known)).toBeUndefined();
  }, 300_000);
});

describe('a compressed last cluster grown (fuzz --impl qemu --seed 515: structure/structure/resize)', () => {
  // a compressed write of the partial last cluster pads its stream with zeros: nothing past the old end is stale
  const opts: ImageOptions = { version: 3, clusterBits: 14, refcountBits: 32, lazyRefcounts: false, virtualSize: 233472, extendedL2: true, compressionType: 'zlib' };
  const grown: Step[] = [
    { kind: 'writeCompressed', pattern: 192, seed: 231552900, offset: 229376, length: 4096 },
    { kind: 'resize', size: 239616 },
  ];

  it('stays compressed in the model, as in QEMU 7.2 and our engine; a stale tail after a shrink is still zeroed', async () => {
    let state = initialState(opts);
    for (const s of grown) if (s.kind === 'writeCompressed' || s.kind === 'resize') state = step(state, s).state;
    expect(guestClusterKind(state, 14)).toBe('compressed');
    // compressed while the disk was larger, then shrunk into the cluster: its tail holds data, which the grow zeroes by copy-on-write
    let shrunk = initialState({ ...opts, virtualSize: 245760 });
    for (const s of [{ kind: 'writeCompressed' as const, pattern: 7, offset: 229376, length: 16384 }, { kind: 'resize' as const, size: 233472 }, { kind: 'resize' as const, size: 239616 }]) {
      shrunk = step(shrunk, s).state;
    }
    expect(guestClusterKind(shrunk, 14)).toBe('normal');
    for (const impl of ['qemu', 'ts'] as const) {
      const run = await replayOps({ impl, options: opts, ops: grown, properties: ['structure'] });
      expect(run.status, impl).toBe('passed');
    }
  }, 300_000);
});
