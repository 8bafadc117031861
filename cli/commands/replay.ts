// `qcow2-verify replay CASE.json [--trace]`: reproduces a corpus case
// deterministically. Exit 0 once it passes, 1 while it still fails as recorded
// (the same fault caused by the same operation; an image case: the same
// signature), 3 when it fails differently, 2 when it cannot run (QEMU missing,
// bad case file).
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CorpusFormatError } from '../../corpus/case/parse.js';
import type { CorpusCase, Implementation, MalformedImageCase } from '../../corpus/case/types.js';
import { ImageFuzzer } from '../../corpus/mutants/image-fuzzer.js';
import { imageCasePage, propertyCasePage } from '../../corpus/replay/html-page.js';
import { caseImage, replayImageCase, replayPropertyCase, type ReplayOutcome } from '../../corpus/replay/replay-case.js';
import { traceCase } from '../../corpus/replay/trace.js';
import { CorpusStoreError, loadCase, type StoredCase } from '../../corpus/store.js';
import { formatText } from '../../properties/index.js';
import { writeReproScripts } from './gate-report.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { qemuReportLine } from '../qemu-tools.js';

// Registered by replay-command.ts (light), which loads this module when replay runs.
export { registerReplay } from './replay-command.js';

export interface ReplayOptions {
  readonly trace: boolean;
  /** Override of the case's own implementation (property-failure cases). */
  readonly impl?: Implementation;
  /** Where a failing property case's QEMU shell script is saved; default a directory named after the case in the temp directory. */
  readonly reproDir?: string;
  /** Where to write the case's HTML page, when asked for. */
  readonly html?: string;
}

export function replayExitCode(outcome: ReplayOutcome): number {
  switch (outcome.verdict) {
    case 'passes':
      return exitCodes.ok;
    case 'reproduced':
      return exitCodes.propertyFailed;
    case 'fails-differently':
      return exitCodes.failsDifferently;
    case 'cannot-run':
      return exitCodes.cannotRun;
    default: {
      const never: never = outcome.verdict;
      throw new Error(`unknown verdict ${String(never)}`);
    }
  }
}

async function replayImage(stored: StoredCase & { case: MalformedImageCase }, trace: boolean, out: (line: string) => void): Promise<ReplayOutcome> {
  const c = stored.case;
  if (trace) {
    out(`base image: ${JSON.stringify(c.base.options)}${c.base.ops.length === 0 ? ', no ops' : ', ops:'}`);
    for (const op of c.base.ops) out(`  ${JSON.stringify(op)}`);
    out(`image: ${stored.imagePath ?? 'rebuilt from the base spec and the patches'}`);
    for (const m of c.mutations) out(`mutation ${JSON.stringify(m)}`);
    for (const p of c.patches) out(`  patch @0x${p.offset.toString(16)} = ${p.hex}`);
    if (c.truncateTo !== undefined) out(`  truncate to ${c.truncateTo} bytes`);
  }
  const fuzzer = new ImageFuzzer();
  try {
    const outcome = await replayImageCase(stored, fuzzer);
    if (trace && outcome.judgement !== undefined) {
      out(`ours: ${outcome.judgement.ours}`);
      out(`QEMU: ${outcome.judgement.qemu}`);
      if (outcome.judgement.excused.length > 0) out(`expected differences applied: ${outcome.judgement.excused.join(', ')}`);
    }
    return outcome;
  } finally {
    await fuzzer.close();
  }
}

/** Why a case that still reproduces is as it should be: a known divergence of the implementation it ran against. */
function expectedNote(c: CorpusCase, implementation: Implementation): string {
  if (c.status === 'known-qemu-divergence' && implementation === 'qemu') return ' as expected: a known QEMU divergence';
  const known = c.statuses?.[implementation] === 'known-divergence' || (c.status === 'known-divergence' && implementation === c.implementation);
  return known ? ' as expected: a known divergence of this implementation' : '';
}

export async function runReplay(file: string, o: ReplayOptions, out: (line: string) => void): Promise<number> {
  let stored: StoredCase;
  try {
    stored = await loadCase(file);
  } catch (error) {
    if (error instanceof CorpusFormatError || error instanceof CorpusStoreError) throw new CliError(error.message, exitCodes.cannotRun);
    throw error;
  }
  const c = stored.case;
  out(`replay ${stored.id}: ${c.kind}, ${c.status}, signature ${c.signature}`);
  out(await qemuReportLine());
  let outcome: ReplayOutcome;
  if (c.kind === 'property-failure') {
    const impl = o.impl ?? c.implementation;
    if (o.trace) await traceCase(c, impl, out);
    outcome = await replayPropertyCase(c, impl, `qcow2-verify replay ${file}`);
    if (outcome.run !== undefined && outcome.run.status !== 'passed') out(formatText(outcome.run));
    if (outcome.run?.status === 'property-failed') {
      // the same sequence as plain qemu-img/qemu-io commands, for a user without qcow2-verify
      const dir = o.reproDir ?? join(tmpdir(), `qcow2-verify-repro-${stored.id}`.slice(0, 120));
      const scripts = await writeReproScripts(dir, [{ result: outcome.run }]);
      for (const script of scripts.values()) out(`  on QEMU: sh ${script}`);
    }
  } else {
    outcome = await replayImage(stored as StoredCase & { case: MalformedImageCase }, o.trace, out);
  }
  const identity = outcome.identity === undefined ? '' : `, ${outcome.identity.observed}`;
  const differently =
    outcome.identity === undefined
      ? `${outcome.signature ?? '?'} instead of ${c.signature}`
      : `${outcome.identity.observed} (${outcome.signature ?? '?'}) instead of ${outcome.identity.recorded} (${c.signature})`;
  const verdictLine: Record<ReplayOutcome['verdict'], string> = {
    reproduced: `still fails as recorded (${outcome.implementation}${identity})${expectedNote(c, outcome.implementation)}: ${outcome.message}`,
    'fails-differently': `fails differently (${outcome.implementation}): ${differently}: ${outcome.message}`,
    passes: `passes (${outcome.implementation})${c.status === 'open' ? ': the case looks fixed; set its status to "fixed"' : ''}`,
    'cannot-run': `cannot run: ${outcome.message}`,
  };
  out(verdictLine[outcome.verdict]);
  if (o.html !== undefined && outcome.verdict !== 'cannot-run') {
    const command = `qcow2-verify replay ${file}`;
    const page =
      c.kind === 'property-failure'
        ? await propertyCasePage(c, outcome.implementation, outcome, command)
        : imageCasePage(c, await caseImage(stored as StoredCase & { case: MalformedImageCase }), outcome, command);
    try {
      await writeFile(o.html, page);
    } catch (error) {
      throw new CliError(`--html: cannot write ${o.html}: ${error instanceof Error ? error.message : String(error)}`, exitCodes.cannotRun);
    }
    out(`html: ${o.html}`);
  }
  return replayExitCode(outcome);
}
