// The malformed-image fuzzer: a mutant is a base image spec plus 1–3
// mutations, drawn by fast-check from a seed; it is built (QEMU), mutated,
// judged (watchdog + QEMU) and, when it is a finding, shrunk by fast-check to
// fewer and simpler mutations. One seed gives one mutant, so `seed` alone
// replays it, and a case file holds the whole mutant as data besides.
import fc from 'fast-check';
import type { BaseImageSpec, Mutation } from '../case/types.js';
import { BaseImageCache, baseImageSpecArb } from './base-image.js';
import { judge, type Judgement } from './judge.js';
import { mutationArb, resolveMutations, type ResolvedMutant } from './mutations.js';
import { qemuVerdict } from './qemu-verdict.js';
import { VerdictWatchdog, type WatchdogConstraints } from './watchdog.js';

export interface Mutant {
  readonly base: BaseImageSpec;
  readonly mutations: readonly Mutation[];
}

export const mutationsPerMutantMax = 3;

export const mutantArb: fc.Arbitrary<Mutant> = fc.record({
  base: baseImageSpecArb,
  mutations: fc.array(mutationArb, { minLength: 1, maxLength: mutationsPerMutantMax }),
});

export interface MutantOutcome {
  readonly mutant: Mutant;
  readonly resolved: ResolvedMutant;
  readonly judgement: Judgement;
}

export interface SeedOutcome {
  readonly seed: number;
  /** The mutant the seed drew, as judged. */
  readonly first: MutantOutcome;
  /** When `first` was a finding: the shrunk mutant (which may show another finding) and fast-check's shrink data. */
  readonly shrunk?: { readonly outcome: MutantOutcome; readonly path: string; readonly shrinks: number };
  /** Mutants judged for this seed, shrinking included. */
  readonly evaluated: number;
}

/**
 * Drops every mutation the finding does not need: fast-check shrinks toward any
 * finding and its array shrinker does not try each element, so a shrunk mutant
 * may keep incidental mutations (a refcount_order byte patched on a v2 image, a
 * truncation that keeps the tables). A mutation goes when the mutant without it
 * shows the same finding (kind, detail and refusal); one always stays.
 */
export async function dropUnneededMutations(
  outcome: MutantOutcome,
  evaluate: (mutant: Mutant) => Promise<MutantOutcome>,
): Promise<{ outcome: MutantOutcome; evaluated: number; dropped: number }> {
  let current = outcome;
  let evaluated = 0;
  let dropped = 0;
  for (let i = 0; i < current.mutant.mutations.length && current.mutant.mutations.length > 1; ) {
    const candidate = await evaluate({ base: current.mutant.base, mutations: current.mutant.mutations.filter((_, k) => k !== i) });
    evaluated++;
    if (sameFinding(candidate.judgement, current.judgement)) {
      current = candidate;
      dropped++;
    } else {
      i++;
    }
  }
  return { outcome: current, evaluated, dropped };
}

function sameFinding(a: Judgement, b: Judgement): boolean {
  const [x, y] = [a.finding, b.finding];
  return x !== undefined && y !== undefined && x.finding === y.finding && x.detail === y.detail && x.refusal === y.refusal;
}

export class ImageFuzzer {
  private readonly bases = new BaseImageCache();
  private readonly watchdog: VerdictWatchdog;

  constructor(constraints: WatchdogConstraints = {}) {
    this.watchdog = new VerdictWatchdog(constraints);
  }

  /** Judges a mutant image given as bytes (replay of a saved image). */
  async judgeBytes(bytes: Uint8Array): Promise<Judgement> {
    const ours = await this.watchdog.evaluate(bytes);
    const qemu = await qemuVerdict(bytes);
    return judge(bytes, ours, qemu);
  }

  async evaluate(mutant: Mutant): Promise<MutantOutcome> {
    const base = await this.bases.get(mutant.base);
    const resolved = resolveMutations(base, mutant.mutations);
    return { mutant, resolved, judgement: await this.judgeBytes(resolved.bytes) };
  }

  /**
   * Draws the seed's mutant, judges it, and (unless `shrink` is false) shrinks it
   * when it is a finding, until `timeUp()` (a campaign's time budget) says stop:
   * then the smallest finding so far is kept.
   */
  async runSeed(seed: number, shrink = true, timeUp: () => boolean = () => false): Promise<SeedOutcome> {
    let first: MutantOutcome | undefined;
    let last: MutantOutcome | undefined;
    let evaluated = 0;
    const property = fc.asyncProperty(mutantArb, async (mutant) => {
      // out of time while shrinking: every further candidate "passes", so fast-check keeps the last finding
      if (last !== undefined && timeUp()) return true;
      const outcome = await this.evaluate(mutant);
      evaluated++;
      first ??= outcome;
      if (outcome.judgement.finding !== undefined) last = outcome;
      return outcome.judgement.finding === undefined;
    });
    const details = await fc.check(property, { seed, numRuns: 1, endOnFailure: !shrink });
    if (first === undefined) throw new Error(`seed ${seed} drew no mutant`);
    if (!details.failed || last === undefined) return { seed, first, evaluated };
    // Shrinking continues from each failing candidate, so the last failing mutant judged is fast-check's counterexample.
    const minimal = await dropUnneededMutations(last, (mutant) => this.evaluate(mutant));
    evaluated += minimal.evaluated;
    return { seed, first, shrunk: { outcome: minimal.outcome, path: details.counterexamplePath ?? '', shrinks: details.numShrinks + minimal.dropped }, evaluated };
  }

  async close(): Promise<void> {
    await this.watchdog.close();
  }
}
