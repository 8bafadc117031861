// `qcow2-verify fuzz`: a fuzz campaign. Runs every property with fresh seeds
// and large budgets plus the malformed-image fuzzer (or only the latter with
// --images), saves each new failure (shrunk, deduplicated by signature) as a
// corpus case with its replay command, and exits 0 when nothing new was found,
// 1 when something was, 2 when it cannot run (QEMU missing, harness error).
import { resolve } from 'node:path';
import { runCampaign, type CampaignBudget, type CampaignSummary } from '../../corpus/campaign/campaign.js';
import { formatSummary, liveRedrawMs, plainIntervalMs, ProgressPrinter } from '../../corpus/campaign/progress.js';
import type { Shard } from '../../corpus/campaign/seed-stream.js';
import { seedOption, shardOption } from '../campaign-options.js';
import { defaultCorpusDir } from '../../corpus/store.js';
import { isCommandImplName, type ImplName } from '../../properties/index.js';
import { shellQuote } from '../../properties/report/run-result.js';
import { exitCodes } from '../exit-codes.js';
import { parseDuration } from '../duration.js';
import { usageError } from '../fatal.js';
import { qemuReportLine } from '../qemu-tools.js';
import { defaultFuzzTime } from './fuzz-command.js';
import { loadKnownQemuDivergences } from './gate-divergences.js';
import { knownDivergenceOf } from './known-divergence-of.js';

// Registered by fuzz-command.ts (light), which loads this module when fuzz runs.
export { defaultFuzzTime, registerFuzz } from './fuzz-command.js';
export { parseDuration } from '../duration.js';

export interface FuzzOptions {
  readonly impl: Exclude<ImplName, 'canary'>;
  readonly budget: CampaignBudget;
  /** --shrink-time: each property failure's shrinking stops this many milliseconds after it was found. */
  readonly shrinkTimeMs?: number;
  readonly seed: number;
  readonly seedGiven: boolean;
  readonly shard: Shard;
  readonly corpusDir: string;
  readonly imagesOnly: boolean;
  /** Where each new property failure's HTML page is written, when asked for. */
  readonly html?: string;
}

export interface RawFuzzOptions {
  impl?: string;
  time?: string;
  runs?: string;
  seed?: string;
  shard?: string;
  corpus?: string;
  images?: boolean;
  html?: string;
  shrinkTime?: string;
}



/**
 * Under a time budget each failure shrinks for at most a twentieth of it (10 s
 * at least): failures QEMU keeps giving (its known divergences) would
 * otherwise spend the campaign shrinking, and the properties late in the cycle
 * (crashConsistency) would never run.
 */
export function defaultFuzzShrinkTimeMs(budgetMs: number): number {
  return Math.max(10_000, Math.floor(budgetMs / 20));
}

/** Pure: validates commander's raw options. `drawSeed` picks a seed when none was given; `env` may give the shard index (JOB_COMPLETION_INDEX). */
export function parseFuzzOptions(raw: RawFuzzOptions, drawSeed: () => number, env: Readonly<Record<string, string | undefined>> = process.env): FuzzOptions {
  const impl = raw.impl ?? 'ts';
  if (impl !== 'ts' && impl !== 'qemu' && !isCommandImplName(impl)) usageError(`--impl must be ts, qemu or cmd:<command line>, got ${impl}`);
  if (raw.time !== undefined && raw.runs !== undefined) usageError('give --time or --runs, not both');
  let budget: CampaignBudget;
  if (raw.runs !== undefined) {
    const count = Number(raw.runs);
    if (!Number.isSafeInteger(count) || count < 1) usageError(`--runs must be a positive integer, got ${raw.runs}`);
    budget = { kind: 'runs', count };
  } else {
    budget = { kind: 'time', ms: parseDuration(raw.time ?? defaultFuzzTime) };
  }
  const seed = seedOption(raw.seed, drawSeed);
  const shard = shardOption(raw.shard, env);
  return {
    impl,
    budget,
    ...(raw.shrinkTime !== undefined
      ? { shrinkTimeMs: parseDuration(raw.shrinkTime, '--shrink-time') }
      : budget.kind === 'time'
        ? { shrinkTimeMs: defaultFuzzShrinkTimeMs(budget.ms) }
        : {}),
    seed,
    seedGiven: raw.seed !== undefined,
    shard,
    corpusDir: resolve(raw.corpus ?? defaultCorpusDir()),
    imagesOnly: raw.images ?? false,
    ...(raw.html === undefined ? {} : { html: resolve(raw.html) }),
  };
}

export function fuzzExitCode(summary: CampaignSummary): number {
  if (summary.findings.some((f) => f.isNew)) return exitCodes.propertyFailed;
  if (summary.cannotRun !== undefined || summary.harnessErrors.length > 0) return exitCodes.cannotRun;
  return exitCodes.ok;
}

export async function runFuzz(o: FuzzOptions, io: { write: (text: string) => void; tty: boolean; shouldStop?: () => boolean }): Promise<number> {
  const budget = o.budget.kind === 'runs' ? `${o.budget.count} runs` : `${o.budget.ms / 1000} s`;
  io.write(
    `qcow2-verify fuzz: seed ${o.seed}${o.seedGiven ? '' : ' (drawn; pass --seed to repeat)'}, shard ${o.shard.index + 1}/${o.shard.count}, ` +
      `impl ${o.impl}, ${o.imagesOnly ? 'malformed images only' : isCommandImplName(o.impl) ? 'the properties that apply to it' : 'all properties and malformed images'}, budget ${budget}, corpus ${o.corpusDir}\n`,
  );
  io.write(`${await qemuReportLine()}\n`);
  const printer = new ProgressPrinter(io.tty, io.write);
  const bundled = defaultCorpusDir();
  const started = Date.now();
  // progress at least every plainIntervalMs, even while one long step or shrink sends no event
  const ticker = setInterval(() => printer.tick(Date.now() - started), io.tty ? liveRedrawMs * 10 : plainIntervalMs);
  ticker.unref();
  const knownDirs = resolve(bundled) === o.corpusDir ? [] : [bundled];
  // QEMU's known divergences seen under a new signature (a later step, another check) are known, as in the gate
  const knownQemu = o.impl === 'qemu' ? await loadKnownQemuDivergences([o.corpusDir, ...knownDirs]) : undefined;
  const summary = await runCampaign({
    impl: o.impl,
    seed: o.seed,
    shard: o.shard,
    budget: o.budget,
    ...(o.shrinkTimeMs === undefined ? {} : { shrinkTimeMs: o.shrinkTimeMs }),
    kinds: o.imagesOnly ? 'images' : 'all',
    corpusDir: o.corpusDir,
    ...(o.html === undefined ? {} : { htmlDir: o.html }),
    knownDirs,
    ...(knownQemu === undefined ? {} : { knownFault: async (run) => (await knownDivergenceOf(run, knownQemu, 'qemu'))?.caseFile }),
    now: () => Date.now(),
    onEvent: (event) => printer.onEvent(event),
    command: `qcow2-verify fuzz --impl ${shellQuote(o.impl)} --seed ${o.seed} --shard ${o.shard.index + 1}/${o.shard.count}${o.imagesOnly ? ' --images' : ''}`,
    ...(io.shouldStop === undefined ? {} : { shouldStop: io.shouldStop }),
  }).finally(() => clearInterval(ticker));
  printer.clearLine();
  io.write(`${formatSummary(summary).join('\n')}\n`);
  return fuzzExitCode(summary);
}
