// QEMU 7.2 shrinks the disk on a snapshot revert it refuses (corpus
// qemu-structure-structure-snapshotRevert-3a2e18bdb21b7b34.json). Seen by a
// later operation (a write-zeroes past the shrunk end answers EIO: gate --impl
// qemu --seed 12's handoff) or by a read of the whole disk, it is the same
// known divergence; the same kinds of failure without the shrink are not.
// And a guest disk shorter than the model's is a typed data violation that
// names the read, the size it needs and the size found, not a harness error.
import { describe, expect, it } from 'vitest';
import { loadKnownQemuDivergences, matchKnownDivergence } from '../../cli/commands/gate-divergences.js';
import { attributeKnownShrink } from '../../cli/commands/gate-known-shrink.js';
import { defaultCorpusDir } from '../../corpus/store.js';
import { runFaultIdentity } from '../../corpus/replay/replay-case.js';
import { replayOps, type RunResult } from '../../properties/index.js';
import type { Step } from '../../properties/steps.js';

const caseFile = 'qemu-structure-structure-snapshotRevert-3a2e18bdb21b7b34.json';
const options = { version: 3 as const, clusterBits: 9, refcountBits: 2, lazyRefcounts: false, virtualSize: 1048576 };
/** The case's sequence: the revert to `base` is refused (the fourth reference overflows 2 bits), yet QEMU shrinks the disk from 2 MiB to 1 MiB. */
const refusedRevert: Step[] = [
  { kind: 'write', offset: 0, length: 512, pattern: 1 },
  { kind: 'snapshotCreate', name: 'base' },
  { kind: 'snapshotCreate', name: 'clean' },
  { kind: 'resize', size: 2097152 },
  { kind: 'write', offset: 1572864, length: 512, pattern: 2 },
  { kind: 'snapshotRevert', name: 'base' },
];
const zeroesPastEnd: Step = { kind: 'writeZeroes', offset: 1572864, length: 512, unmap: false };

async function failing(property: 'handoff' | 'readsAndOutcomes' | 'reopen', ops: Step[]): Promise<Extract<RunResult, { status: 'property-failed' }>> {
  const run = await replayOps({ impl: 'qemu', options, ops, properties: [property] });
  if (run.status !== 'property-failed') throw new Error(`QEMU 7.2 no longer shrinks the disk here: ${run.status}`);
  return run;
}

describe('the refused revert that shrinks the disk, seen later', () => {
  it('a write-zeroes past the shrunk end answering EIO is the known divergence (handoff: QEMU holds the image after the first reopen)', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const run = await failing('handoff', [{ kind: 'reopen' }, ...refusedRevert, zeroesPastEnd]);
    expect(runFaultIdentity(run)).toBe('outcome/writeZeroes:ok');
    expect(run.failure.message).toMatch(/write -z 0x180000 0x200: the implementation answered out-of-range .*Input\/output error.*the model expects ok/);
    expect(matchKnownDivergence(run, known)).toBeUndefined();
    expect((await attributeKnownShrink(run, known))?.caseFile).toBe(caseFile);
  }, 300_000);

  it('the whole-disk read finding the disk short is a typed data violation, and the known divergence', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const atEnd = await failing('readsAndOutcomes', refusedRevert);
    expect(atEnd.failure).toMatchObject({ kind: 'violation', check: 'read' });
    expect(atEnd.failure.message).toBe(
      "[read] at the end of the sequence: read 0x0 0x200000 needs a guest disk of 2097152 bytes, the implementation's has 1048576 (the model's has 2097152)",
    );
    expect(runFaultIdentity(atEnd)).toBe('data/snapshotRevert:refcount-overflow');
    expect((await attributeKnownShrink(atEnd, known))?.caseFile).toBe(caseFile);
    // a short read past the shrunk end (qemu-io's hexdump answers EIO) and the reopen's whole-disk read say the same
    const read = await failing('readsAndOutcomes', [...refusedRevert, { kind: 'read', offset: 1572864, length: 512 }]);
    expect(read.failure.message).toMatch(/^\[read\] read 0x180000 0x200: .* needs a guest disk of 1573376 bytes, the implementation's has 1048576 \(the model's has 2097152\)$/);
    const reopen = await failing('reopen', refusedRevert);
    expect(reopen.failure.message).toMatch(/^\[reopen\] before the final reopen: read 0x0 0x200000 needs a guest disk of 2097152 bytes, the implementation's has 1048576/);
  }, 300_000);

  it('a refused revert that grows the disk to the snapshot\'s size: a discard past the model\'s end that QEMU does is the known divergence (gate --impl qemu --seed 12, handoff)', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const larger = { version: 3 as const, clusterBits: 9, refcountBits: 2, lazyRefcounts: true, virtualSize: 4200960 };
    const steps: Step[] = [
      { kind: 'discard', offset: 0x7e00, length: 0x3f9c00 },
      { kind: 'snapshotCreate', name: 'base' },
      { kind: 'resize', size: 0x401800 },
      { kind: 'snapshotCreate', name: 'base' },
      { kind: 'snapshotCreate', name: 'clean' },
      { kind: 'snapshotRevert', name: 'base' },
      { kind: 'write', offset: 0x401709, length: 0xf7, pattern: 0, seed: 788665603 },
      { kind: 'snapshotCreate', name: '2' },
      { kind: 'write', offset: 0, length: 0x163, pattern: 0, seed: 406099156 },
      { kind: 'discard', offset: 0, length: 0x4019e0 },
    ];
    const run = await replayOps({ impl: 'qemu', options: larger, ops: steps, properties: ['handoff'] });
    if (run.status !== 'property-failed') throw new Error(`QEMU 7.2 no longer resizes the disk here: ${run.status}`);
    expect(run.failure.message).toMatch(/discard 0x0 0x4019e0: the implementation answered ok, the model expects out-of-range/);
    expect(matchKnownDivergence(run, known)).toBeUndefined();
    expect((await attributeKnownShrink(run, known))?.caseFile).toBe(caseFile);
    // a discard that ends inside the model's disk, failing otherwise, is not it
    const inside = { ...run, counterexample: { ...run.counterexample, steps: [...steps.slice(0, -1), { kind: 'discard' as const, offset: 0, length: 0x1000 }] } };
    expect(await attributeKnownShrink(inside, known)).toBeUndefined();
  }, 300_000);

  it('the same kinds of failure without that shrink are not it', async () => {
    const known = await loadKnownQemuDivergences([defaultCorpusDir()]);
    const run = await failing('handoff', [{ kind: 'reopen' }, ...refusedRevert, zeroesPastEnd]);
    // the failing op inside the shrunk disk
    const inside = { ...run, counterexample: { ...run.counterexample, steps: [...run.counterexample.steps.slice(0, -1), { ...zeroesPastEnd, offset: 0 }] } };
    expect(await attributeKnownShrink(inside, known)).toBeUndefined();
    // a disk short by another size than the refusal left
    const other = { ...run, failure: { kind: 'violation' as const, check: 'read' as const, message: "[read] at the end of the sequence: read 0x0 0x200000 needs a guest disk of 2097152 bytes, the implementation's has 1048064 (the model's has 2097152)" } };
    expect(await attributeKnownShrink(other, known)).toBeUndefined();
    // no refused revert in the sequence: 16-bit refcounts let it succeed, nothing is replayed
    const wide = { ...run, counterexample: { ...run.counterexample, options: { ...options, refcountBits: 16 } } };
    expect(await attributeKnownShrink(wide, known)).toBeUndefined();
    // another kind of fault
    expect(await attributeKnownShrink({ ...run, failure: { kind: 'violation', check: 'structure', message: '[structure] x' } }, known)).toBeUndefined();
  }, 300_000);
});
