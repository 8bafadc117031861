// Malformed-image findings are known by what was refused, not by the incidental
// mutations a shrunk mutant kept, and shrinking drops every mutation the
// finding does not need (the example: one refusal of L1 reserved bits
// saved three times, told apart by a refcount_order byte patched on a v2 image
// and by a truncation that kept the L1 table).
import { describe, expect, it } from 'vitest';
import type { BaseImageSpec, Mutation } from '../../corpus/case/types.js';
import { mutationLabel } from '../../corpus/case/identity.js';
import { dropUnneededMutations, type Mutant, type MutantOutcome } from '../../corpus/mutants/image-fuzzer.js';
import { judge, refusalKind } from '../../corpus/mutants/judge.js';
import type { OurVerdict } from '../../corpus/mutants/our-verdict.js';
import type { QemuVerdict } from '../../corpus/mutants/qemu-verdict.js';
import { judgementSignature } from '../../corpus/replay/replay-case.js';

/** A v2 header's first bytes: what the judge reads its facts from. */
const v2Header = (() => {
  const bytes = new Uint8Array(112);
  new DataView(bytes.buffer).setUint32(4, 2);
  return bytes;
})();

const qemuOpens: QemuVerdict = { info: { ok: true }, check: { verdict: 'corrupt', corruptions: 1, leaks: 0 } };
const checkCorrupt: OurVerdict['check'] = { ok: true, verdict: 'corrupt', corruptions: 1, leaks: 0 };

function refusedWith(message: string, field?: string): OurVerdict {
  return { open: { ok: false, error: { kind: 'typed', name: 'Qcow2Error', code: 'corrupt', message, ...(field === undefined ? {} : { field }) } }, check: checkCorrupt };
}

const opens: OurVerdict = { open: { ok: true, virtualSize: 1 << 20 }, read: { ok: true, bytesRead: 1 << 20 }, check: checkCorrupt };

const reservedBits: Mutation = { kind: 'table-entry', table: 'l1', index: 0, xor: '0x100' };
const refcountOrderOnV2: Mutation = { kind: 'header-field', field: 'refcount_order', value: '0x0' };
const truncateKeepingL1: Mutation = { kind: 'truncate', keepPermille: 900 };

describe('refusal kinds', () => {
  it('drop values and notes, keep field names with digits', () => {
    expect(refusalKind('L1 entry 3 at byte 1560: reserved bits set (0x8000000000000900); read-write open refuses it')).toBe('L1 entry # at byte #: reserved bits set (#)');
    expect(refusalKind('l1_size')).toBe('l1_size');
    expect(refusalKind('snapshot 12 l1_table_offset')).toBe('snapshot # l1_table_offset');
  });

  it('one refusal reached through different incidental mutations has one signature', () => {
    const a = judge(v2Header, { kind: 'verdict', verdict: refusedWith('L1 entry 0 at byte 1536: reserved bits set (0x8000000000000900)') }, qemuOpens);
    const b = judge(v2Header, { kind: 'verdict', verdict: refusedWith('L1 entry 7 at byte 1592: reserved bits set (0x8000000000000801)') }, qemuOpens);
    expect(a.finding?.finding).toBe('open-disagreement');
    const signatureA = judgementSignature(a, [reservedBits, refcountOrderOnV2].map(mutationLabel));
    const signatureB = judgementSignature(b, [reservedBits, truncateKeepingL1].map(mutationLabel));
    expect(signatureA).toBe(signatureB);
    expect(signatureA).not.toContain('refcount_order');
    // A refused field is named by the field alone, whatever its value.
    const c = judge(v2Header, { kind: 'verdict', verdict: refusedWith('invalid l1_table_offset at byte 40: 512 (…)', 'l1_table_offset') }, qemuOpens);
    expect(judgementSignature(c, [])).toBe('malformedImages/open-disagreement/ours=refuses:corrupt,qemu=opens/corrupt:l1_table_offset');
  });

  it('QEMU refusing what we open is known by QEMU\'s words, without the file name', () => {
    const qemuRefuses: QemuVerdict = { info: { ok: false, message: "Could not open 'mutant.qcow2': Header extension too large" }, check: { verdict: 'cannot-check', corruptions: 0, leaks: 0 } };
    const j = judge(v2Header, { kind: 'verdict', verdict: opens }, qemuRefuses);
    expect(j.finding?.refusal).toBe('qemu:Header extension too large');
  });
});

describe('dropUnneededMutations', () => {
  const base: BaseImageSpec = { options: { version: 2, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 }, ops: [] };
  /** Judges a mutant as if only the reserved-bits mutation made the engine refuse it. */
  async function evaluate(mutant: Mutant): Promise<MutantOutcome> {
    const refused = mutant.mutations.includes(reservedBits);
    const verdict = refused ? refusedWith(`L1 entry 0 at byte 1536: reserved bits set (0x${mutant.mutations.length}00)`) : opens;
    return { mutant, resolved: { bytes: v2Header, patches: [] }, judgement: judge(v2Header, { kind: 'verdict', verdict }, qemuOpens) };
  }

  it('keeps only the mutation the finding needs', async () => {
    const shrunk = await evaluate({ base, mutations: [refcountOrderOnV2, reservedBits, truncateKeepingL1] });
    const minimal = await dropUnneededMutations(shrunk, evaluate);
    expect(minimal.outcome.mutant.mutations).toEqual([reservedBits]);
    expect(minimal.dropped).toBe(2);
    expect(minimal.evaluated).toBe(3);
    expect(minimal.outcome.judgement.finding?.refusal).toBe(shrunk.judgement.finding?.refusal);
  });

  it('keeps a lone mutation, and every mutation the finding needs', async () => {
    const alone = await evaluate({ base, mutations: [reservedBits] });
    expect((await dropUnneededMutations(alone, evaluate)).evaluated).toBe(0);
    const needsBoth = async (mutant: Mutant): Promise<MutantOutcome> =>
      mutant.mutations.length === 2 ? evaluate(mutant) : { ...(await evaluate(mutant)), judgement: judge(v2Header, { kind: 'verdict', verdict: opens }, qemuOpens) };
    const both = await evaluate({ base, mutations: [truncateKeepingL1, reservedBits] });
    expect((await dropUnneededMutations(both, needsBoth)).outcome.mutant.mutations).toEqual([truncateKeepingL1, reservedBits]);
  });
});
