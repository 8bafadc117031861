// What the gate shows while it runs, on stderr so that stdout (the report) and
// the --json/--junit files stay clean. On a terminal one live line is redrawn
// in place as events arrive; elsewhere (CI logs) a plain line is printed every
// `progressIntervalMs` whatever happens, so a long sequence or a long shrink is
// never silent. Rendering only: nothing here decides anything.
import { formatDuration } from '../../corpus/campaign/progress.js';
import type { PoolEvent } from './gate-pool.js';

export const progressIntervalMs = 10_000;
/** A terminal's live line is redrawn at most this often. */
export const liveRedrawMs = 100;

export interface GateStats {
  sequences: number;
  operations: number;
  failures: number;
  shrinkAttempts: number;
  shrinkSteps: number;
  batchesRunning: number;
}

export function emptyGateStats(): GateStats {
  return { sequences: 0, operations: 0, failures: 0, shrinkAttempts: 0, shrinkSteps: 0, batchesRunning: 0 };
}

export function formatGateProgress(elapsedMs: number, s: Readonly<GateStats>, budget: string): string {
  const shrink = s.shrinkAttempts > 0 || s.shrinkSteps > 0 ? `  shrinking ${s.shrinkAttempts} attempts, ${s.shrinkSteps} ops` : '';
  return `gate ${formatDuration(elapsedMs)} of ${budget}  sequences ${s.sequences}  ops ${s.operations}  failures ${s.failures}${shrink}  batches running ${s.batchesRunning}`;
}

/** Counts pool events and prints progress; `start` arms the periodic line, `stop` ends it. */
export class GateProgress {
  readonly stats = emptyGateStats();
  private timer: NodeJS.Timeout | undefined;
  private lastDrawn = -Infinity;
  private lineShown = false;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    private readonly now: () => number,
    private readonly budget: string,
    private readonly started = now(),
  ) {}

  start(): void {
    this.timer = setInterval(() => this.draw(true), this.tty ? liveRedrawMs * 10 : progressIntervalMs);
    this.timer.unref();
  }

  onEvent(e: PoolEvent): void {
    switch (e.kind) {
      case 'steps':
        this.stats.operations += e.steps;
        this.stats.shrinkSteps += e.shrinkSteps;
        break;
      case 'sequence':
        return;
      case 'progress': {
        const p = e.progress;
        if (p.kind === 'failure') this.stats.failures++;
        else if (p.kind === 'shrink-attempt') this.stats.shrinkAttempts++;
        else if (p.kind === 'sequence') this.stats.sequences++;
        break;
      }
      default: {
        const never: never = e;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
    if (this.tty) this.draw(false);
  }

  batchStarted(): void {
    this.stats.batchesRunning++;
  }

  batchEnded(): void {
    this.stats.batchesRunning--;
  }

  /** Ends the live line so the report starts on a fresh one, and disarms the timer. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.lineShown) this.write('\r\x1b[K');
    this.lineShown = false;
  }

  private draw(periodic: boolean): void {
    const at = this.now();
    const line = formatGateProgress(at - this.started, this.stats, this.budget);
    if (!this.tty) {
      this.write(`${line}\n`);
      return;
    }
    if (!periodic && at - this.lastDrawn < liveRedrawMs) return;
    this.lastDrawn = at;
    this.write(`\r${line}\x1b[K`);
    this.lineShown = true;
  }
}
