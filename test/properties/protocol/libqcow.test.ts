// The libqcow reader gate: libyal's libqcow (Debian's python3-libqcow, which
// npm test's pretest installs) through adapters/libqcow/qcow2_verify_libqcow.py,
// reading images our engine and QEMU build in random states. Its wrong reads
// are known divergences in the corpus (docs/libqcow-findings.md): the gate
// finds them by itself, shrinks them and reports them as known; anything else
// it finds fails this test.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { basename } from 'node:path';
import { loadKnownDivergences, matchKnownDivergence } from '../../../cli/commands/gate-divergences.js';
import { knownFor, parseGateOptions, runGate } from '../../../cli/commands/gate.js';
import type { PropertyFailureCase } from '../../../corpus/case/types.js';
import { defaultCorpusDir, loadCorpus } from '../../../corpus/store.js';
import { replayOps } from '../../../properties/index.js';

const libqcow = 'cmd:/usr/bin/python3 adapters/libqcow/qcow2_verify_libqcow.py';

async function gate(raw: { seed: string; runs: string; property?: string }): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await runGate(parseGateOptions({ impl: libqcow, workers: '1', ...raw }, () => 0), (l) => lines.push(l));
  return { code, text: lines.join('\n') };
}

describe('libqcow reader gate', () => {
  it('finds a zero cluster read as the image header, shrinks it to one write -z, and knows it from the corpus', async () => {
    const { code, text } = await gate({ seed: '7', runs: '1', property: 'readsEngineImages' });
    expect(code, text).toBe(0);
    expect(text).toContain('implementation: libqcow 20201213, read-only');
    expect(text).toMatch(/^Property readsEngineImages \(impl \S+ \S+\): known libqcow divergence \(case libqcow-readsEngineImages-read-writeZeroes-[0-9a-f]{16}\.json\)/m);
    expect(text).toMatch(/Counterexample:\n {2}write -z 0x0 0x[0-9a-f]+\nShrunk \d+ times\nFailure: \[read\] after write -z 0x0 0x[0-9a-f]+: guest offset 0x0 reads \[51 46 49 fb 00 00 00 03/);
    expect(text).toMatch(/^summary: 1\/1 properties held \(1 known libqcow divergence: libqcow-readsEngineImages-read-writeZeroes-/m);
  });

  it('reads every image of the reader properties as the model says, but for its known divergences', async () => {
    const seed = String(fc.readConfigureGlobal().seed as number);
    const { code, text } = await gate({ seed, runs: '2' });
    expect(code, text).toBe(0);
    expect(text).toMatch(/^summary: 2\/2 properties held/m);
    expect(text).toMatch(/^left out: properties readsAndOutcomes \(the implementation is read-only\), structure/m);
  });

  it('reads faithfully what QEMU wrote wrong: that is QEMU\'s known divergence, not libqcow\'s', async () => {
    // stale bytes after a shrink and grow of a partial last cluster (docs/qemu-findings.md)
    const stored = (await loadCorpus(defaultCorpusDir())).find((s) => s.id.startsWith('qemu-readsAndOutcomes-read-read-'));
    expect(stored?.case.status).toBe('known-qemu-divergence');
    const c = stored!.case as PropertyFailureCase;
    const run = await replayOps({ impl: libqcow, options: c.options, ops: c.ops, properties: ['readsQemuImages'] });
    expect(run.status).toBe('property-failed');
    const dirs = [defaultCorpusDir()];
    const known = { own: await loadKnownDivergences(dirs, libqcow, 'libqcow'), qemu: await loadKnownDivergences(dirs, 'qemu', undefined) };
    expect(matchKnownDivergence(run, knownFor('readsQemuImages', known))).toMatchObject({ owner: 'QEMU', caseFile: basename(stored!.jsonPath) });
    // our engine's images have no such bytes: there the same fault would be libqcow's own
    expect(matchKnownDivergence(run, knownFor('readsEngineImages', known))).toBeUndefined();
  });
});
