// `replay --html FILE`: the failure page of a corpus case. A property-failure
// case runs its shrunk sequence again through the model and a fresh driver up
// to the failing step, then draws the implementation's image after that step
// against the model's state; a malformed-image case draws its image with both
// verdicts. The verdict itself still comes from replay-case.ts.
import { bufferReader, initialState, step as modelStep, type ModelState } from '../../model/index.js';
import { driverFactoryFor, formatStep, isFaultStep, isPropertyName, type ImplName, type RunResult, type Step } from '../../properties/index.js';
import { applyModel, imageLayout, renderHtml } from '../../properties/report/html/index.js';
import type { Implementation, MalformedImageCase, PropertyFailureCase } from '../case/types.js';
import type { ReplayOutcome } from './replay-case.js';

type FailedRun = Extract<RunResult, { status: 'property-failed' }>;

/** What a property-failure page shows: the sequence, who ran it, and what to say about it. */
interface PropertyPage {
  readonly options: PropertyFailureCase['options'];
  readonly steps: readonly Step[];
  readonly impl: ImplName;
  /** The property that failed (its driver: a reader property's reads through the implementation, images from another). */
  readonly property: string;
  /** Marks the last step as the failing one. */
  readonly failed: boolean;
  readonly title: (driverName: string) => string;
  readonly divergence: string;
  readonly notes: readonly string[];
}

/**
 * Runs `steps` again through the model and a fresh driver (stopping where the
 * implementation throws), then draws the implementation's flushed image
 * against the model's state.
 */
async function propertyPage(p: PropertyPage): Promise<string> {
  let state: ModelState = initialState(p.options);
  const driver = await (await driverFactoryFor(p.impl, isPropertyName(p.property) ? p.property : 'readsAndOutcomes'))(p.options);
  let threw: string | undefined;
  let bytes: Uint8Array;
  try {
    for (const step of p.steps) {
      // the page replays without faults: a fault step runs the op it carries, without its fault
      const s = isFaultStep(step) ? (step.kind === 'ioError' ? step.op : step.during?.op) : step;
      if (s === undefined || s.kind === 'read') continue;
      state = modelStep(state, s).state;
      try {
        await driver.apply(s);
      } catch (error) {
        threw = `the implementation threw at this step: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
        break;
      }
    }
    bytes = await driver.imageBytes();
  } finally {
    await driver.close();
  }
  const layout = imageLayout(bufferReader(bytes));
  const expectation = applyModel(layout, bufferReader(bytes), state);
  return renderHtml(
    layout,
    {
      title: p.title(driver.name),
      script: p.steps.map(formatStep),
      ...(p.failed ? { failingStep: p.steps.length - 1 } : {}),
      divergence: p.divergence,
      notes: [...(threw === undefined ? [] : [threw]), ...p.notes, `image drawn: the implementation's, flushed after the ${p.failed ? 'failing' : 'last'} step`],
    },
    expectation,
  );
}

/** The page for a property-failure case after `outcome` (a replay of it). */
export async function propertyCasePage(c: PropertyFailureCase, impl: Implementation, outcome: ReplayOutcome, replayCommand: string): Promise<string> {
  const run = outcome.run?.status === 'property-failed' ? (outcome.run as FailedRun) : undefined;
  return propertyPage({
    options: c.options,
    steps: run?.counterexample.steps ?? c.ops,
    impl,
    property: c.property,
    failed: run !== undefined,
    title: (driverName) => `${c.property} against ${driverName}: ${outcome.verdict}`,
    divergence: run === undefined ? `no failure this time: ${outcome.message}` : run.failure.message,
    notes: [`signature: ${outcome.signature ?? c.signature}`, `replay: ${replayCommand}`],
  });
}

/** The page for a failed gate or fuzz run (its shrunk counterexample), as replay --html draws a saved case. */
export function failedRunPage(run: FailedRun): Promise<string> {
  return propertyPage({
    options: run.counterexample.options,
    steps: run.counterexample.steps,
    impl: run.impl,
    property: run.property,
    failed: true,
    title: (driverName) => `${run.property} against ${driverName}: failed`,
    divergence: run.failure.message,
    notes: [`replay: ${run.replay}`],
  });
}

/** What a malformed-image page says beside the picture of the image. */
interface ImagePage {
  readonly title: string;
  /** The refusal, crash or disagreement in words. */
  readonly divergence: string;
  readonly verdicts?: { readonly ours: string; readonly qemu: string };
  readonly mutations: MalformedImageCase['mutations'];
  readonly signature: string;
  readonly replayCommand: string;
}

function imagePage(image: Uint8Array, p: ImagePage): string {
  const v = p.verdicts;
  return renderHtml(imageLayout(bufferReader(image)), {
    title: p.title,
    divergence: p.divergence,
    notes: [...(v === undefined ? [] : [`ours: ${v.ours}`, `QEMU: ${v.qemu}`]), ...p.mutations.map((m) => `mutation: ${JSON.stringify(m)}`), `signature: ${p.signature}`, `replay: ${p.replayCommand}`],
  });
}

/** The page for a malformed-image case: its image, QEMU's verdict and ours. */
export function imageCasePage(c: MalformedImageCase, image: Uint8Array, outcome: ReplayOutcome, replayCommand: string): string {
  const j = outcome.judgement;
  return imagePage(image, {
    title: `${c.kind}: ${outcome.verdict}`,
    divergence: outcome.message,
    ...(j === undefined ? {} : { verdicts: { ours: j.ours, qemu: j.qemu } }),
    mutations: c.mutations,
    signature: outcome.signature ?? c.signature,
    replayCommand,
  });
}

/**
 * The page for a malformed-image finding of the fuzzer, as it is saved
 * (`image`: the mutant's bytes): the picture of the image, what was found in
 * words (`finding: message`), both verdicts, the mutations and the replay command.
 */
export function imageFindingPage(c: MalformedImageCase, image: Uint8Array, replayCommand: string): string {
  return imagePage(image, {
    title: `malformed image (${c.finding}): ${c.verdicts.ours} / QEMU: ${c.verdicts.qemu}`,
    divergence: `${c.finding}: ${c.message}`,
    verdicts: c.verdicts,
    mutations: c.mutations,
    signature: c.signature,
    replayCommand,
  });
}
