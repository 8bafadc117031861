// Every case in corpus/cases/ is a regression test (corpus/README.md, "Status"):
// an open case must still reproduce, a fixed case must pass, a known QEMU
// divergence must still reproduce against QEMU and pass against our engine.
// A case that fails with another signature fails here, with both signatures.
import { afterAll, describe, expect, it } from 'vitest';
import { defaultCorpusDir, loadCorpus, type StoredCase } from '../../corpus/store.js';
import { expectations, replayImageCase, replayPropertyCase, type ReplayOutcome } from '../../corpus/replay/replay-case.js';
import { ImageFuzzer } from '../../corpus/mutants/image-fuzzer.js';
import type { Implementation, MalformedImageCase } from '../../corpus/case/types.js';

const cases = await loadCorpus(defaultCorpusDir());
let fuzzer: ImageFuzzer | undefined;

afterAll(async () => {
  await fuzzer?.close();
});

async function replay(stored: StoredCase, implementation: Implementation): Promise<ReplayOutcome> {
  const c = stored.case;
  if (c.kind === 'property-failure') return replayPropertyCase(c, implementation);
  fuzzer ??= new ImageFuzzer();
  return replayImageCase(stored as StoredCase & { case: MalformedImageCase }, fuzzer);
}

describe('corpus regression', () => {
  it('holds the known QEMU 7.2 divergences named in docs/semantics.md', () => {
    const divergences = cases.filter((s) => s.case.status === 'known-qemu-divergence').map((s) => s.case.signature);
    expect(divergences).toContain('readsAndOutcomes/read/read');
    expect(divergences.filter((s) => s === 'qemuJudges/qemu-img-check/snapshotCreate').length).toBeGreaterThanOrEqual(2);
  });

  for (const stored of cases) {
    for (const { implementation, expect: wanted } of expectations(stored.case)) {
      it(`${stored.id} (${stored.case.status}) ${wanted === 'reproduced' ? 'still reproduces' : 'passes'} against ${implementation}`, async () => {
        const outcome = await replay(stored, implementation);
        const seen = `${outcome.verdict}${outcome.signature === undefined ? '' : ` with ${outcome.signature}`}: ${outcome.message}`;
        expect(outcome.verdict, `${stored.case.signature} — ${seen}`).toBe(wanted);
      });
    }
  }
});
