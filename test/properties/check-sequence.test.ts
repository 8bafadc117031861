// checkSequence: the property suite inside another project's own fast-check
// property, with its own driver (docs/library.md).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCanaryDriver } from '../../properties/drivers/canary.js';
import { createEngineDriver } from '../../properties/drivers/engine.js';
import { checkSequence, PropertyViolation, sequence } from '../../properties/index.js';

describe('checkSequence', () => {
  it('holds for our engine under the readsAndOutcomes and structure checks', async () => {
    await fc.assert(fc.asyncProperty(sequence({ commandsCountMax: 15 }), (seq) => checkSequence(createEngineDriver, seq)), { numRuns: 5 });
    await fc.assert(fc.asyncProperty(sequence({ commandsCountMax: 15 }), (seq) => checkSequence(createEngineDriver, seq, { property: 'structure' })), { numRuns: 5 });
  });

  it('rejects with the divergence, so fast-check finds the canary\'s lost write', async () => {
    let caught: unknown;
    const details = await fc.check(
      fc.asyncProperty(sequence({ commandsCountMax: 15 }), (seq) =>
        checkSequence(createCanaryDriver, seq).catch((error: unknown) => {
          caught = error;
          throw error;
        }),
      ),
      { numRuns: 50, endOnFailure: true },
    );
    expect(details.failed).toBe(true);
    expect(caught).toBeInstanceOf(PropertyViolation);
    expect(String(details.counterexample?.[0]?.commands !== undefined ? [...details.counterexample[0].commands].join('\n') : '')).toMatch(/^write /m);
  });

  it('refuses handoff, which runs its own driver, not the one given', async () => {
    const [seq] = fc.sample(sequence(), { numRuns: 1, seed: 1 });
    await expect(checkSequence(createEngineDriver, seq!, { property: 'handoff' })).rejects.toThrow('property handoff runs its own driver, not the one given; pick another property');
  });
});
