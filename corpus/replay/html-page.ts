// `replay --html FILE`: the failure page of a corpus case. A property-failure
// case runs its shrunk sequence again through the model and a fresh driver up
// to the failing step, then draws the implementation's image after that step
// against the model's state; a malformed-image case draws its image with both
// verdicts. The verdict itself still comes from replay-case.ts.
import { bufferReader, initialState, step as modelStep, type ModelState } from '../../model/index.js';
import { driverFactories, formatStep, type RunResult } from '../../properties/index.js';
import { applyModel, imageLayout, renderHtml } from '../../properties/report/html/index.js';
import type { Implementation, MalformedImageCase, PropertyFailureCase } from '../case/types.js';
import type { ReplayOutcome } from './replay-case.js';

type FailedRun = Extract<RunResult, { status: 'property-failed' }>;

/** The page for a property-failure case after `outcome` (a replay of it). */
export async function propertyCasePage(c: PropertyFailureCase, impl: Implementation, outcome: ReplayOutcome, replayCommand: string): Promise<string> {
  const run = outcome.run?.status === 'property-failed' ? (outcome.run as FailedRun) : undefined;
  const steps = run?.counterexample.steps ?? c.ops;
  let state: ModelState = initialState(c.options);
  const driver = await driverFactories[impl](c.options);
  let threw: string | undefined;
  let bytes: Uint8Array;
  try {
    for (const s of steps) {
      if (s.kind === 'read') continue;
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
  const divergence = run === undefined ? `no failure this time: ${outcome.message}` : run.failure.message;
  return renderHtml(
    layout,
    {
      title: `${c.property} against ${driver.name}: ${outcome.verdict}`,
      script: steps.map(formatStep),
      ...(run === undefined ? {} : { failingStep: steps.length - 1 }),
      divergence,
      notes: [...(threw === undefined ? [] : [threw]), `signature: ${outcome.signature ?? c.signature}`, `replay: ${replayCommand}`, `image drawn: the implementation's, flushed after the ${run === undefined ? 'last' : 'failing'} step`],
    },
    expectation,
  );
}

/** The page for a malformed-image case: its image, QEMU's verdict and ours. */
export function imageCasePage(c: MalformedImageCase, image: Uint8Array, outcome: ReplayOutcome, replayCommand: string): string {
  const j = outcome.judgement;
  return renderHtml(imageLayout(bufferReader(image)), {
    title: `${c.kind}: ${outcome.verdict}`,
    divergence: outcome.message,
    notes: [...(j === undefined ? [] : [`ours: ${j.ours}`, `QEMU: ${j.qemu}`]), ...c.mutations.map((m) => `mutation: ${JSON.stringify(m)}`), `signature: ${outcome.signature ?? c.signature}`, `replay: ${replayCommand}`],
  });
}
