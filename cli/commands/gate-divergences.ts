// Known QEMU divergences in the gate. Where QEMU 7.2 is wrong and the model is
// right (docs/semantics.md), the corpus holds a property-failure case with
// status `known-qemu-divergence`. `gate --impl qemu` reports a failure with the
// same signature (corpus/README.md, "Names and signatures") as that known
// divergence instead of failing on it forever. The matching lives here, beside
// the CLI, because data flows CLI → properties: the property suite knows nothing
// of the corpus.
import { basename } from 'node:path';
import { runSignature } from '../../corpus/replay/replay-case.js';
import { CorpusStoreError, loadCorpus } from '../../corpus/store.js';
import type { ImageOptions } from '../../model/index.js';
import type { RunResult } from '../../properties/index.js';
import { escapeXml } from '../../properties/report/format-junit.js';
import { formatText } from '../../properties/report/format-text.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';

export interface KnownDivergence {
  readonly signature: string;
  /** The case's file name, e.g. `qemu-qemuJudges-qemu-img-check-snapshotCreate-9241c9949ceda02d.json`. */
  readonly caseFile: string;
  readonly description: string;
  readonly options: ImageOptions;
}

/** Signature → the cases with it, for every known-qemu-divergence property-failure case in `dirs` (sorted by file name). */
export type KnownDivergences = ReadonlyMap<string, readonly KnownDivergence[]>;

export async function loadKnownQemuDivergences(dirs: readonly string[]): Promise<KnownDivergences> {
  const known = new Map<string, KnownDivergence[]>();
  for (const dir of dirs) {
    let cases;
    try {
      cases = await loadCorpus(dir);
    } catch (error) {
      // Without the corpus the gate cannot tell a known divergence from a new failure: no verdict.
      if (error instanceof CorpusStoreError) throw new CliError(`cannot load the known QEMU divergences: ${error.message}`, exitCodes.cannotRun);
      throw error;
    }
    for (const { case: c, jsonPath } of cases) {
      if (c.kind !== 'property-failure' || c.status !== 'known-qemu-divergence') continue;
      const entry = { signature: c.signature, caseFile: basename(jsonPath), description: c.description, options: c.options };
      known.set(c.signature, [...(known.get(c.signature) ?? []), entry]);
    }
  }
  return known;
}

/**
 * The known divergence a failed run is, or undefined (passed, not a property
 * failure, or an unknown signature). The signature decides; when several cases
 * share it (the same leak with 1-bit and 2-bit refcounts), the one whose image
 * options are closest to the counterexample's is named.
 */
export function matchKnownDivergence(result: RunResult, known: KnownDivergences): KnownDivergence | undefined {
  if (result.status !== 'property-failed') return undefined;
  const options = result.counterexample.options;
  const likeness = (d: KnownDivergence): number =>
    (['version', 'clusterBits', 'refcountBits', 'lazyRefcounts'] as const).filter((field) => d.options[field] === options[field]).length;
  let best: KnownDivergence | undefined;
  for (const d of known.get(runSignature(result.property, result)) ?? []) if (best === undefined || likeness(d) > likeness(best)) best = d;
  return best;
}

export function knownLabel(d: KnownDivergence): string {
  return `known QEMU divergence (case ${d.caseFile})`;
}

/** The text report of a run that hit a known divergence: the usual report under a headline that says it does not fail the gate. */
export function formatKnownDivergence(result: RunResult, d: KnownDivergence): string {
  const lines = formatText(result).split('\n');
  return [`Property ${result.property} (impl ${result.impl}): ${knownLabel(d)} after ${result.runs} runs; not a gate failure`, `Known: ${d.description}`, ...lines.slice(1)].join(
    '\n',
  );
}

/** A JUnit <testcase> for a known divergence: skipped, with the report as its output. */
export function junitKnownTestcase(result: RunResult, d: KnownDivergence): string {
  return [
    `  <testcase classname="qcow2-verify.${escapeXml(result.impl)}" name="${escapeXml(result.property)}" time="${(result.timeMs / 1000).toFixed(3)}">`,
    `    <skipped message="${escapeXml(knownLabel(d))}"/>`,
    `    <system-out>${escapeXml(formatKnownDivergence(result, d))}</system-out>`,
    '  </testcase>',
  ].join('\n');
}
