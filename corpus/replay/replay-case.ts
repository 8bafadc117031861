// Replaying a case deterministically. A property-failure case runs its shrunk
// sequence through replayOps (no fast-check, no randomness); a malformed-image
// case judges its image again (the saved .qcow2, or the base rebuilt by QEMU
// with the recorded patches). A property-failure case reproduces when a failure
// with the same fault identity (case/fault.ts: the kind of fault and the
// operation that caused it) comes out again, an image case when the same
// signature does; a different failure is reported as such, never as "passes".
import { readFile } from 'node:fs/promises';
import { QemuMissingError } from '../../oracle/index.js';
import { replayOps, type RunResult } from '../../properties/index.js';
import { isPropertyName } from '../../properties/registry.js';
import { caseFaultIdentity, faultIdentity } from '../case/fault.js';
import { imageFindingSignature, mutationLabel, propertyFailureSignature } from '../case/identity.js';
import type { Implementation, MalformedImageCase, PropertyFailureCase } from '../case/types.js';
import type { Judgement } from '../mutants/judge.js';
import type { ImageFuzzer } from '../mutants/image-fuzzer.js';
import { buildBaseImage } from '../mutants/base-image.js';
import { applyPatches } from '../mutants/mutations.js';
import type { StoredCase } from '../store.js';

/**
 * - reproduced: fails as recorded (property failures: the case's fault identity; image findings: its signature);
 * - passes: no failure at all;
 * - fails-differently: fails, but as something else (a new or changed bug);
 * - cannot-run: the oracle is missing or the harness broke (exit 2, never green).
 */
export type ReplayVerdict = 'reproduced' | 'passes' | 'fails-differently' | 'cannot-run';

export interface ReplayOutcome {
  readonly verdict: ReplayVerdict;
  readonly implementation: Implementation;
  /** The signature observed this time, when it failed. */
  readonly signature?: string;
  /** Property failures: the fault identity observed this time (`leak/snapshotCreate:refcount-overflow`), and the case's. */
  readonly identity?: { readonly observed: string; readonly recorded: string };
  /** One paragraph for a human: what happened this time. */
  readonly message: string;
  readonly run?: RunResult;
  readonly judgement?: Judgement;
}

/** property + first divergence kind + op kind of a failed run (see corpus/README.md). */
export function runSignature(property: string, run: Extract<RunResult, { status: 'property-failed' }>): string {
  const f = run.failure;
  const divergence = f.kind === 'violation' ? f.check : f.assertion ? 'assertion' : 'implementation-error';
  const last = run.counterexample.steps[run.counterexample.steps.length - 1];
  return propertyFailureSignature(property, divergence, last?.kind ?? 'none');
}

/** The fault identity of a failed run: the kind of fault and the operation that caused it (case/fault.ts). */
export function runFaultIdentity(run: Extract<RunResult, { status: 'property-failed' }>): string {
  const f = run.failure;
  const check = f.kind === 'violation' ? f.check : f.assertion ? 'assertion' : 'implementation-error';
  return faultIdentity({ check, message: f.message }, run.counterexample.options, run.counterexample.steps);
}

/** An open disagreement is known by what was refused; any other finding by its mutations' labels. */
export function judgementSignature(j: Judgement, mutationLabels: readonly string[]): string | undefined {
  if (j.finding === undefined) return undefined;
  const what = j.finding.refusal === undefined ? mutationLabels : [j.finding.refusal];
  return imageFindingSignature(j.finding.finding, j.finding.detail, what);
}

export async function replayPropertyCase(c: PropertyFailureCase, impl: Implementation, replayHint?: string): Promise<ReplayOutcome> {
  if (!isPropertyName(c.property)) {
    return { verdict: 'cannot-run', implementation: impl, message: `unknown property ${JSON.stringify(c.property)} (the registry has no such property)` };
  }
  const run = await replayOps({ impl, options: c.options, ops: c.ops, properties: [c.property], ...(replayHint === undefined ? {} : { replayHint }) });
  switch (run.status) {
    case 'passed':
      return { verdict: 'passes', implementation: impl, message: `${c.property} holds against ${impl}`, run };
    case 'property-failed': {
      const signature = runSignature(c.property, run);
      const identity = { observed: runFaultIdentity(run), recorded: caseFaultIdentity(c) };
      const message = run.failure.message;
      const verdict = identity.observed === identity.recorded ? 'reproduced' : 'fails-differently';
      return { verdict, implementation: impl, signature, identity, message, run };
    }
    case 'oracle-unavailable':
    case 'harness-error':
      return { verdict: 'cannot-run', implementation: impl, message: run.message, run };
    default: {
      const never: never = run;
      throw new Error(`unknown run status ${JSON.stringify(never)}`);
    }
  }
}

/** The mutant's bytes: the image saved with the case, else the base rebuilt and patched. */
export async function caseImage(stored: StoredCase & { case: MalformedImageCase }): Promise<Uint8Array> {
  if (stored.imagePath !== undefined) return new Uint8Array(await readFile(stored.imagePath));
  const c = stored.case;
  return applyPatches(await buildBaseImage(c.base), c.patches, c.truncateTo);
}

export async function replayImageCase(stored: StoredCase & { case: MalformedImageCase }, fuzzer: ImageFuzzer): Promise<ReplayOutcome> {
  let judgement: Judgement;
  try {
    judgement = await fuzzer.judgeBytes(await caseImage(stored));
  } catch (error) {
    if (error instanceof QemuMissingError) return { verdict: 'cannot-run', implementation: stored.case.implementation, message: error.message };
    throw error;
  }
  const signature = judgementSignature(judgement, stored.case.mutations.map(mutationLabel));
  const message = judgement.finding?.message ?? `ours: ${judgement.ours}; QEMU: ${judgement.qemu}`;
  if (signature === undefined) return { verdict: 'passes', implementation: stored.case.implementation, message, judgement };
  const verdict = signature === stored.case.signature ? 'reproduced' : 'fails-differently';
  return { verdict, implementation: stored.case.implementation, signature, message, judgement };
}

/** What the regression suite demands of a case, per implementation (corpus/README.md, "Status"). */
export interface Expectation {
  readonly implementation: Implementation;
  readonly expect: 'reproduced' | 'passes';
}

export function expectations(c: PropertyFailureCase | MalformedImageCase): readonly Expectation[] {
  const further = Object.entries(c.statuses ?? {}).flatMap(([implementation, status]): Expectation[] =>
    implementation === c.implementation ? [] : [{ implementation: implementation as Implementation, expect: status === 'fixed' ? 'passes' : 'reproduced' }],
  );
  const own = ownExpectations(c);
  return [...own, ...further.filter((e) => !own.some((o) => o.implementation === e.implementation))];
}

function ownExpectations(c: PropertyFailureCase | MalformedImageCase): readonly Expectation[] {
  switch (c.status) {
    case 'open':
      return [{ implementation: c.implementation, expect: 'reproduced' }];
    case 'fixed':
      return [{ implementation: c.implementation, expect: 'passes' }];
    case 'known-qemu-divergence':
      // QEMU is wrong: it must still be (so we notice when QEMU changes), and our engine must be right.
      return c.kind === 'property-failure'
        ? [
            { implementation: 'qemu', expect: 'reproduced' },
            { implementation: 'ts', expect: 'passes' },
          ]
        : [{ implementation: c.implementation, expect: 'reproduced' }];
    case 'known-divergence':
      // the implementation is wrong: it must still be, so that a fix is noticed and the status changed on purpose
      return [{ implementation: c.implementation, expect: 'reproduced' }];
    default: {
      const never: never = c.status;
      throw new Error(`unknown status ${String(never)}`);
    }
  }
}
