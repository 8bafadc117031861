// Time budgets in the runner on a fake clock: no test here depends on the
// machine's speed. The clock only decides how much work is done, never a verdict.
import { describe, expect, it } from 'vitest';
import { formatText, runProperty, type RunResult } from '../../properties/index.js';

/** A clock that stands still at 1 ms: every deadline at or before it has passed. */
const stoppedClock = () => 1;

function failedOf(r: RunResult): Extract<RunResult, { status: 'property-failed' }> {
  if (r.status !== 'property-failed') throw new Error(`expected a failure, got ${r.status}`);
  return r;
}

describe('runner budgets', () => {
  it('runs only the first sequence once the deadline has passed, and says it stopped early', async () => {
    const r = await runProperty({ property: 'readsAndOutcomes', impl: 'ts', seed: 11, numRuns: 5, now: stoppedClock, deadline: 0 });
    expect(r).toMatchObject({ status: 'passed', runs: 1, stoppedEarly: 'time' });
    expect(r.coverage.sequences).toBe(1);
    const all = await runProperty({ property: 'readsAndOutcomes', impl: 'ts', seed: 11, numRuns: 5, now: stoppedClock, deadline: 2 });
    expect(all).toMatchObject({ status: 'passed', runs: 5 });
    expect(all.stoppedEarly).toBeUndefined();
  });

  it('cuts off even the first sequence at the hard deadline: the run then judged nothing', async () => {
    const r = await runProperty({ property: 'readsAndOutcomes', impl: 'ts', seed: 11, numRuns: 5, now: stoppedClock, deadline: 0, hardDeadline: 0 });
    expect(r).toMatchObject({ status: 'passed', runs: 0, stoppedEarly: 'time' });
    expect(r.coverage.sequences).toBe(0);
  });

  it('reports the unshrunk failure when the shrink deadline has passed, and says why shrinking stopped', async () => {
    // a few attempts only: a shrink to a fixpoint (canary.test.ts) runs in-memory for minutes under load
    const capped = failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, shrinkAttemptsMax: 5 }));
    expect(capped.shrinks).toBeGreaterThan(0);
    expect(capped.shrinkStoppedEarly).toBe('attempts');
    const cut = failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, now: stoppedClock, shrinkDeadline: 0 }));
    expect(cut.shrinks).toBe(0);
    expect(cut.shrinkStoppedEarly).toBe('time');
    // the failure exactly as first found: what a run with no shrink attempt at all reports
    const unshrunk = failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, shrinkAttemptsMax: 0 }));
    expect(unshrunk.shrinks).toBe(0);
    expect(cut.counterexample.steps).toEqual(unshrunk.counterexample.steps);
    expect(cut.runs).toBe(capped.runs);
    expect(formatText(cut)).toContain('Shrunk 0 times (shrinking stopped early: the time budget is spent; a smaller counterexample may exist)');
  });

  it('stops shrinking --shrink-time after the failure was found, on the run\'s clock', async () => {
    // the clock moves only with shrink attempts: 10 ms each, so a 25 ms shrink time allows exactly 3
    let t = 0;
    let attempts = 0;
    const onProgress = (e: { kind: string }) => {
      if (e.kind === 'shrink-attempt') {
        attempts++;
        t += 10;
      }
    };
    const r = failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, now: () => t, shrinkTimeMs: 25, onProgress }));
    expect(attempts).toBe(3);
    expect(r.shrinkStoppedEarly).toBe('time');
    // a shrink deadline before it still wins
    t = 0;
    attempts = 0;
    const earlier = failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, now: () => t, shrinkTimeMs: 25, shrinkDeadline: 5, onProgress }));
    expect(attempts).toBe(1);
    expect(earlier.shrinkStoppedEarly).toBe('time');
  });

  it('reports progress: steps, sequences, the failure and shrink attempts', async () => {
    const events: string[] = [];
    failedOf(await runProperty({ property: 'readsAndOutcomes', impl: 'canary', seed: 7, numRuns: 5, shrinkAttemptsMax: 3, onProgress: (e) => events.push(e.kind) }));
    expect(events.filter((e) => e === 'failure')).toHaveLength(1);
    expect(events.filter((e) => e === 'shrink-attempt')).toHaveLength(3);
    expect(events.filter((e) => e === 'sequence').length).toBeGreaterThan(0);
    expect(events.filter((e) => e === 'step').length).toBeGreaterThan(events.filter((e) => e === 'sequence').length);
  });
});
