// Every property of the registry, with a small fixed budget, against our engine.
// The seed is the global one (test/setup.ts, QCOW2_VERIFY_SEED), so a failure
// here replays with the printed `qcow2-verify gate … --seed … --path …` line.
import { describe, expect, it } from 'vitest';
import { formatText, properties, propertyNames, runProperty } from '../../properties/index.js';

/** Sequences per property: enough to reach snapshots, resizes and refusals, small enough for CI. */
const runsPerProperty = 12;

/**
 * Set only by vitest.mutation.config.ts: Stryker runs this file against every
 * engine mutant, and the two properties that spawn QEMU cost seconds per
 * mutant while the in-memory structure check already judges what qemu-img
 * check would (docs/mutation.md). npm test never sets it, and the properties
 * left out are not registered at all, so nothing reports green unrun.
 */
const inMemoryOnly = process.env['QCOW2_VERIFY_IN_MEMORY_ONLY'] === '1';
// the reader properties judge a cmd: implementation reading others' images (test/properties/protocol/)
const selected = propertyNames.filter((name) => properties[name].readerOf === undefined && !(inMemoryOnly && properties[name].needsQemu));

describe('properties against the ts engine', () => {
  for (const property of selected) {
    it(property, async () => {
      const result = await runProperty({ property, impl: 'ts', numRuns: runsPerProperty });
      expect(result.status, formatText(result)).toBe('passed');
      expect(result.coverage.sequences).toBe(runsPerProperty);
      expect(result.coverage.operations).toBeGreaterThan(runsPerProperty);
    });
  }
});
