// Every property of the registry, with a small fixed budget, against our engine.
// The seed is the global one (test/setup.ts, QCOW2_VERIFY_SEED), so a failure
// here replays with the printed `qcow2-verify gate … --seed … --path …` line.
import { describe, expect, it } from 'vitest';
import { formatText, propertyNames, runProperty } from '../../properties/index.js';

/** Sequences per property: enough to reach snapshots, resizes and refusals, small enough for CI. */
const runsPerProperty = 12;

describe('properties against the ts engine', () => {
  for (const property of propertyNames) {
    it(property, async () => {
      const result = await runProperty({ property, impl: 'ts', numRuns: runsPerProperty });
      expect(result.status, formatText(result)).toBe('passed');
      expect(result.coverage.sequences).toBe(runsPerProperty);
      expect(result.coverage.operations).toBeGreaterThan(runsPerProperty);
    });
  }
});
