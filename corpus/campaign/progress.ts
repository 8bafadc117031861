// What a campaign shows while it runs and when it ends. On a terminal one
// progress line is redrawn in place (\r); elsewhere (CI logs) a plain line is
// printed every `plainIntervalMs` (the CLI also calls `tick` on a timer, so a
// long sequence or shrink is never silent), so logs stay readable. Findings always get
// lines of their own. Rendering only: nothing here decides anything.
import type { CampaignEvent, CampaignFinding, CampaignStats, CampaignSummary } from './campaign.js';

export function formatDuration(ms: number): string {
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s` : `${m}m${String(s).padStart(2, '0')}s`;
}

export function formatProgress(s: Readonly<CampaignStats>): string {
  const rate = s.elapsedMs > 0 ? Math.round((s.operations * 1000) / s.elapsedMs) : 0;
  const shrink = s.shrinkAttempts > 0 ? `  shrink attempts ${s.shrinkAttempts}${s.shrinksStoppedEarly > 0 ? ` (${s.shrinksStoppedEarly} stopped early by the time budget)` : ''}` : '';
  return (
    `fuzz ${formatDuration(s.elapsedMs)}  runs ${s.runs}  sequences ${s.sequences}  ops ${s.operations} (${rate}/s)  ` +
    `mutants ${s.mutants}  failures ${s.newFailures} new, ${s.knownFailures} known${shrink}`
  );
}

export function formatFinding(f: CampaignFinding): string[] {
  const head = `${f.isNew ? 'NEW' : 'known'} ${f.kind} ${f.signature} (run seed ${f.runSeed})${f.knownCase === undefined ? '' : `: the fault of known case ${f.knownCase}`}`;
  const lines = [head, `  ${f.message.split('\n')[0] ?? ''}`];
  if (f.replay !== undefined) lines.push(`  Replay: ${f.replay}`);
  if (f.reproScript !== undefined) lines.push(`  on QEMU: sh ${f.reproScript}`);
  if (f.html !== undefined) lines.push(`  html: ${f.html}`);
  return lines;
}

export const plainIntervalMs = 10_000;
/** A terminal's live line is redrawn at most this often. */
export const liveRedrawMs = 100;

/** Turns campaign events into output; `write` receives text without a trailing newline policy of its own. */
export class ProgressPrinter {
  private lastPlainAt = 0;
  private lastDrawnAt = -Infinity;
  private lineShown = false;
  private stats: Readonly<CampaignStats> | undefined;

  constructor(
    private readonly tty: boolean,
    private readonly write: (text: string) => void,
  ) {}

  onEvent(event: CampaignEvent): void {
    switch (event.kind) {
      case 'run':
      case 'progress':
        this.stats = event.stats;
        this.draw(event.stats.elapsedMs, event.kind === 'run');
        return;
      case 'finding':
        this.clearLine();
        this.write(`${formatFinding(event.finding).join('\n')}\n`);
        return;
      case 'harness-error':
        this.clearLine();
        this.write(`harness error: ${event.message}\n`);
        return;
      default: {
        const never: never = event;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Called on a timer with the campaign's elapsed time: prints the line even
   * when no event came (a long step or shrink), so progress is never silent.
   */
  tick(elapsedMs: number): void {
    if (this.stats === undefined) return;
    this.draw(elapsedMs, false);
  }

  private draw(elapsedMs: number, force: boolean): void {
    const stats = { ...(this.stats as CampaignStats), elapsedMs };
    if (this.tty) {
      if (!force && elapsedMs - this.lastDrawnAt < liveRedrawMs) return;
      this.lastDrawnAt = elapsedMs;
      this.write(`\r${formatProgress(stats)}\x1b[K`);
      this.lineShown = true;
    } else if (elapsedMs - this.lastPlainAt >= plainIntervalMs) {
      this.lastPlainAt = elapsedMs;
      this.write(`${formatProgress(stats)}\n`);
    }
  }

  /** Ends the in-place line so the summary starts on a fresh one. */
  clearLine(): void {
    if (this.tty && this.lineShown) this.write('\r\x1b[K');
    this.lineShown = false;
  }
}

export function formatSummary(summary: CampaignSummary): string[] {
  const s = summary.stats;
  const lines = [`summary: ${formatProgress(s).replace(/^fuzz /, '')}`];
  if (summary.cannotRun !== undefined) lines.push(`cannot run: ${summary.cannotRun}`);
  for (const e of summary.harnessErrors) lines.push(`harness error: ${e}`);
  const fresh = summary.findings.filter((f) => f.isNew);
  if (fresh.length > 0) {
    lines.push(`${fresh.length} new failure${fresh.length === 1 ? '' : 's'} saved:`);
    for (const f of fresh) lines.push(...formatFinding(f).map((l) => `  ${l}`));
  } else if (summary.cannotRun === undefined) {
    lines.push('nothing new found');
  }
  return lines;
}
