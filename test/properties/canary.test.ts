// The canary engine drops every third write while reporting success: the suite
// must catch it (and shrink to the few steps that show it), or the harness is dead.
import { describe, expect, it } from 'vitest';
import { canaryDropEvery, formatText, runProperty, type PropertyName } from '../../properties/index.js';

describe('canary', () => {
  for (const property of ['readsAndOutcomes', 'structure'] as PropertyName[]) {
    it(`is caught by ${property}`, async () => {
      const result = await runProperty({ property, impl: 'canary', numRuns: 30, seed: 1234 });
      expect(result.status, formatText(result)).toBe('property-failed');
      if (result.status !== 'property-failed') return;
      const writes = result.counterexample.steps.filter((s) => s.kind === 'write');
      // a dropped write needs canaryDropEvery writes; shrinking removes nearly everything else
      expect(writes.length).toBe(canaryDropEvery);
      expect(result.counterexample.steps.length).toBeLessThanOrEqual(canaryDropEvery + 2);
      expect(result.failure.kind).toBe('violation');
      expect(result.replay).toBe(`qcow2-verify gate --impl canary --property ${property} --seed 1234 --path ${JSON.stringify(result.path)}`);
    });
  }
});
