// Gate progress on a fake clock: a plain line every 10 s on a non-terminal
// whatever happens (a long shrink is never silent), a live line on a terminal
// redrawn in place and cleared before the report. Nothing here waits for real time.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GateProgress, progressIntervalMs } from '../../../cli/commands/gate-progress.js';

beforeEach(() => {
  // Only what GateProgress uses: faking setTimeout too would also fake the
  // timeouts of vitest's own worker RPC, which a 100 s advance then fires.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('gate progress', () => {
  it('prints a plain line every 10 s on a non-terminal, with sequences, operations, failures and shrink steps', () => {
    const written: string[] = [];
    const progress = new GateProgress((t) => written.push(t), false, () => Date.now(), '60 s');
    progress.start();
    progress.batchStarted();
    progress.onEvent({ kind: 'steps', steps: 7, shrinkSteps: 0 });
    progress.onEvent({ kind: 'progress', progress: { kind: 'sequence', operations: 7 } });
    vi.advanceTimersByTime(progressIntervalMs - 1);
    expect(written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(written).toEqual(['gate 0m10s of 60 s  sequences 1  ops 7  failures 0  batches running 1\n']);
    progress.onEvent({ kind: 'progress', progress: { kind: 'failure' } });
    progress.onEvent({ kind: 'progress', progress: { kind: 'shrink-attempt', failed: true } });
    progress.onEvent({ kind: 'steps', steps: 0, shrinkSteps: 4 });
    // a long shrink that reports nothing more still gets its line every 10 s
    vi.advanceTimersByTime(2 * progressIntervalMs);
    expect(written.slice(1)).toEqual([
      'gate 0m20s of 60 s  sequences 1  ops 7  failures 1  shrinking 1 attempts, 4 ops  batches running 1\n',
      'gate 0m30s of 60 s  sequences 1  ops 7  failures 1  shrinking 1 attempts, 4 ops  batches running 1\n',
    ]);
    progress.stop();
    vi.advanceTimersByTime(10 * progressIntervalMs);
    expect(written).toHaveLength(3);
  });

  it('redraws one live line on a terminal and clears it when stopped', () => {
    const written: string[] = [];
    const progress = new GateProgress((t) => written.push(t), true, () => Date.now(), '60 s');
    progress.start();
    progress.onEvent({ kind: 'steps', steps: 1, shrinkSteps: 0 });
    expect(written).toEqual(['\rgate 0m00s of 60 s  sequences 0  ops 1  failures 0  batches running 0\x1b[K']);
    progress.onEvent({ kind: 'steps', steps: 1, shrinkSteps: 0 });
    expect(written).toHaveLength(1); // redrawn at most every 100 ms
    vi.advanceTimersByTime(1000);
    expect(written.at(-1)).toBe('\rgate 0m01s of 60 s  sequences 0  ops 2  failures 0  batches running 0\x1b[K');
    expect(written.every((t) => !t.includes('\n'))).toBe(true);
    progress.stop();
    expect(written.at(-1)).toBe('\r\x1b[K');
  });
});
