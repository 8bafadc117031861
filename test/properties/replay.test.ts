// A failure replays exactly: its seed and path give the same counterexample in
// one run (fast-check's ReplayCommands.spec.ts), and replayOps on the shrunk
// steps, without fast-check, fails the same check.
import { describe, expect, it } from 'vitest';
import { formatSteps, replayOps, runProperty } from '../../properties/index.js';

describe('replay', () => {
  it('seed and path reproduce the counterexample with numRuns 1, and replayOps fails the same way', async () => {
    const first = await runProperty({ property: 'readsAndOutcomes', impl: 'canary', numRuns: 30, seed: 99 });
    expect(first.status).toBe('property-failed');
    if (first.status !== 'property-failed') return;
    expect(first.path).toBeDefined();

    const again = await runProperty({ property: 'readsAndOutcomes', impl: 'canary', numRuns: 1, seed: 99, path: first.path });
    expect(again.status).toBe('property-failed');
    if (again.status !== 'property-failed') return;
    expect(formatSteps(again.counterexample.steps)).toBe(formatSteps(first.counterexample.steps));
    expect(again.counterexample.options).toEqual(first.counterexample.options);
    expect(again.failure).toEqual(first.failure);

    const replayed = await replayOps({
      impl: 'canary',
      options: first.counterexample.options,
      ops: first.counterexample.steps,
      properties: ['readsAndOutcomes'],
    });
    expect(replayed.status).toBe('property-failed');
    if (replayed.status !== 'property-failed') return;
    expect(replayed.failure).toEqual(first.failure);
    expect(formatSteps(replayed.counterexample.steps)).toBe(formatSteps(first.counterexample.steps));

    // the same steps on the real engine: the failure was the canary's, not the sequence's
    const healthy = await replayOps({ impl: 'ts', options: first.counterexample.options, ops: first.counterexample.steps, properties: ['readsAndOutcomes'] });
    expect(healthy.status).toBe('passed');
  });
});
