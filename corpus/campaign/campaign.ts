// A fuzz campaign: runs, each with a fresh seed from the shard's seed stream,
// cycling through every property (a batch of sequences per run) and the
// malformed-image fuzzer (one mutant per run), until the time or run budget is
// spent. Each failure arrives shrunk (fast-check), is deduplicated by signature
// against the corpus and this campaign, and is saved as a case.
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QemuMissingError, qemuVersion } from '../../oracle/index.js';
import {
  ImplementationError,
  isCommandImplName,
  planImplementation,
  properties,
  propertyNames,
  runProperty,
  type ImplementationPlan,
  type ImplName,
  type PropertyName,
  type RunResult,
} from '../../properties/index.js';
import { saveReproScript } from '../../properties/report/save-repro-script.js';
import { dedupKey, implementationSlug, mutationLabel } from '../case/identity.js';
import type { CorpusCase, MalformedImageCase, PropertyFailureCase } from '../case/types.js';
import { ImageFuzzer, type SeedOutcome } from '../mutants/image-fuzzer.js';
import { provenance } from '../provenance.js';
import { failedRunPage, imageFindingPage } from '../replay/html-page.js';
import { judgementSignature, runSignature } from '../replay/replay-case.js';
import { knownSignatures, loadCorpus, saveCase } from '../store.js';
import { runSeed, runsPerShardMax, type Shard } from './seed-stream.js';

type FailedRun = Extract<RunResult, { status: 'property-failed' }>;

export type CampaignBudget = { readonly kind: 'time'; readonly ms: number } | { readonly kind: 'runs'; readonly count: number };

export interface CampaignConstraints {
  /** ts, qemu, or a cmd: implementation (its applicable properties only: the image fuzzer judges our engine); canary for tests (the CLI offers none). */
  readonly impl: ImplName;
  readonly seed: number;
  readonly shard: Shard;
  readonly budget: CampaignBudget;
  /** Milliseconds: each property failure's shrinking stops this long after it was found. Default: none beyond the time budget. */
  readonly shrinkTimeMs?: number;
  /** `images`: only the malformed-image fuzzer; `all`: every property and the image fuzzer. */
  readonly kinds: 'images' | 'all';
  /** Where new cases are written. */
  readonly corpusDir: string;
  /** Where each new finding's HTML page is written (replay/html-page.ts: property failures and malformed images), when asked for. */
  readonly htmlDir?: string;
  /** Further corpora whose cases count as known (e.g. the bundled corpus/cases). */
  readonly knownDirs?: readonly string[];
  /**
   * The known divergence a failed property run is by its fault, as its case
   * file name, or undefined (the gate's matching, which lives beside the CLI:
   * cli/commands/known-divergence-of.ts). A failure whose signature is new but
   * whose fault is known is counted known and not saved.
   */
  readonly knownFault?: (run: FailedRun) => Promise<string | undefined>;
  /** Sequences per property run (fast-check numRuns). Default 10: short runs keep the time budget tight. */
  readonly sequencesPerRun?: number;
  /** Longest sequence. Default 80: campaigns afford longer sequences than the gate. */
  readonly commandsCountMax?: number;
  /** The malformed-image fuzzer (default a fresh one; tests plant a fault in its verdict). The campaign closes it. */
  readonly imageFuzzer?: ImageFuzzer;
  /** Shrink malformed-image findings (default true; the quick test in npm test skips it). */
  readonly shrinkImages?: boolean;
  /** The campaign's clock (budget and progress only; never a verdict). */
  readonly now: () => number;
  readonly shouldStop?: () => boolean;
  readonly onEvent?: (event: CampaignEvent) => void;
  /** Recorded in new cases' provenance. */
  readonly command?: string;
}

export interface CampaignStats {
  elapsedMs: number;
  runs: number;
  sequences: number;
  operations: number;
  mutants: number;
  /** Failures whose signature the corpus did not know (or knew as fixed: a regression). */
  newFailures: number;
  /** Failures already tracked (open or known divergence), or found twice in this campaign. */
  knownFailures: number;
  /** Shrink attempts run (property failures). */
  shrinkAttempts: number;
  /** Failures whose shrinking the time budget stopped before a fixpoint. */
  shrinksStoppedEarly: number;
}

/** Shrinking may run past the time budget by this fraction of it. */
export const campaignShrinkOvertimeFraction = 0.05;

export interface CampaignFinding {
  readonly kind: CorpusCase['kind'];
  readonly signature: string;
  readonly message: string;
  readonly isNew: boolean;
  /** The known divergence's case file when the fault, not the signature, is known (CampaignConstraints.knownFault). */
  readonly knownCase?: string;
  readonly jsonPath?: string;
  readonly replay?: string;
  /** A new property failure's QEMU shell script (qemu-img and qemu-io only). */
  readonly reproScript?: string;
  /** A new finding's HTML page, with --html. */
  readonly html?: string;
  readonly runSeed: number;
}

export type CampaignEvent =
  | { readonly kind: 'run'; readonly stats: Readonly<CampaignStats> }
  | { readonly kind: 'progress'; readonly stats: Readonly<CampaignStats> }
  | { readonly kind: 'finding'; readonly finding: CampaignFinding; readonly stats: Readonly<CampaignStats> }
  | { readonly kind: 'harness-error'; readonly message: string };

export interface CampaignSummary {
  readonly stats: Readonly<CampaignStats>;
  readonly findings: readonly CampaignFinding[];
  readonly harnessErrors: readonly string[];
  /** Set when the campaign could not run at all (e.g. QEMU missing). */
  readonly cannotRun?: string;
}

type RunKind = PropertyName | 'images';

export async function runCampaign(c: CampaignConstraints): Promise<CampaignSummary> {
  const start = c.now();
  const stats: CampaignStats = { elapsedMs: 0, runs: 0, sequences: 0, operations: 0, mutants: 0, newFailures: 0, knownFailures: 0, shrinkAttempts: 0, shrinksStoppedEarly: 0 };
  const known = new Map<string, CorpusCase['status']>();
  for (const dir of [c.corpusDir, ...(c.knownDirs ?? [])]) for (const [k, v] of knownSignatures(await loadCorpus(dir))) known.set(k, v);
  const seen = new Set<string>();
  const findings: CampaignFinding[] = [];
  const harnessErrors: string[] = [];
  let implementation: ImplementationPlan;
  try {
    implementation = await planImplementation(c.impl);
  } catch (error) {
    if (error instanceof ImplementationError) return { stats, findings, harnessErrors, cannotRun: `the implementation failed its handshake: ${error.rawMessage}` };
    throw error;
  }
  const applicable = propertyNames.filter((name) => implementation.notApplicable(properties[name]) === undefined);
  // the image fuzzer (which judges our engine) first: a short or loaded campaign still tries malformed images, not only the first properties
  const plan: readonly RunKind[] = c.kinds === 'images' ? ['images'] : isCommandImplName(c.impl) ? applicable : ['images', ...applicable];
  let fuzzer: ImageFuzzer | undefined = c.imageFuzzer;

  /** `image`: the bytes saved with the case; `mutant`: a malformed image's bytes (for its page, saved or not). */
  const record = async (candidate: CorpusCase, image: Uint8Array | undefined, seed: number, run?: FailedRun, mutant?: Uint8Array): Promise<void> => {
    const key = dedupKey(implementationSlug(candidate), candidate.signature);
    const status = known.get(key);
    const newSignature = !seen.has(key) && (status === undefined || status === 'fixed');
    const knownCase = newSignature && run !== undefined ? await c.knownFault?.(run) : undefined;
    const isNew = newSignature && knownCase === undefined;
    if (knownCase === undefined) seen.add(key);
    let finding: CampaignFinding = {
      kind: candidate.kind,
      signature: candidate.signature,
      message: candidate.message,
      isNew,
      runSeed: seed,
      ...(knownCase === undefined ? {} : { knownCase }),
    };
    if (isNew) {
      const saved = await saveCase(c.corpusDir, candidate, image);
      finding = { ...finding, jsonPath: saved.jsonPath, replay: `qcow2-verify replay ${saved.jsonPath}` };
      if (run !== undefined) {
        const dir = join(tmpdir(), `qcow2-verify-repro-${saved.id}`.slice(0, 120));
        const title = [`qcow2-verify fuzz: ${candidate.property ?? ''} failed against ${candidate.implementation}`, candidate.message.split('\n')[0] ?? '', `Replay: qcow2-verify replay ${saved.jsonPath}`];
        finding = { ...finding, reproScript: await saveReproScript(dir, run.counterexample, title) };
      }
      const page =
        c.htmlDir === undefined ? undefined
        : run !== undefined ? await failedRunPage(run)
        : candidate.kind === 'malformed-image' && mutant !== undefined ? imageFindingPage(candidate, mutant, `qcow2-verify replay ${saved.jsonPath}`)
        : undefined;
      if (c.htmlDir !== undefined && page !== undefined) {
        const html = join(c.htmlDir, `${saved.id}.html`);
        await mkdir(c.htmlDir, { recursive: true });
        await writeFile(html, page);
        finding = { ...finding, html };
      }
      stats.newFailures++;
    } else {
      stats.knownFailures++;
    }
    findings.push(finding);
    c.onEvent?.({ kind: 'finding', finding, stats });
  };

  // Every campaign runs the image fuzzer, which needs QEMU (base images, the verdict to compare with).
  try {
    await qemuVersion();
  } catch (error) {
    if (error instanceof QemuMissingError) return { stats, findings, harnessErrors, cannotRun: error.message };
    throw error;
  }
  // The time budget bounds the runs in flight too: sequences are cut off at the
  // deadline, and shrinking may take a twentieth more, so a campaign ends within 10 %.
  const deadline = c.budget.kind === 'time' ? start + c.budget.ms : undefined;
  const shrinkDeadline = c.budget.kind === 'time' ? start + c.budget.ms * (1 + campaignShrinkOvertimeFraction) : undefined;
  try {
    for (let k = 0; ; k++) {
      stats.elapsedMs = c.now() - start;
      if (c.shouldStop?.()) break;
      if (c.budget.kind === 'runs' ? k >= c.budget.count : stats.elapsedMs >= c.budget.ms) break;
      if (k > runsPerShardMax(c.shard)) break;
      const seed = runSeed(c.seed, c.shard, k);
      const kind = plan[k % plan.length] ?? 'images';
      if (kind === 'images') {
        fuzzer ??= new ImageFuzzer();
        const outcome = await fuzzer.runSeed(seed, c.shrinkImages ?? true, () => shrinkDeadline !== undefined && c.now() >= shrinkDeadline);
        stats.mutants += outcome.evaluated;
        const candidate = await imageCase(c, outcome);
        if (candidate !== undefined) await record(candidate.case, candidate.image, seed, undefined, candidate.mutant);
      } else {
        const sequencesBefore = stats.sequences;
        const operationsBefore = stats.operations;
        const result = await runProperty({
          property: kind,
          impl: c.impl,
          plan: implementation,
          seed,
          numRuns: c.sequencesPerRun ?? 10,
          sequence: { commandsCountMax: c.commandsCountMax ?? 80 },
          now: c.now,
          ...(deadline === undefined ? {} : { deadline }),
          ...(shrinkDeadline === undefined ? {} : { shrinkDeadline }),
          ...(c.shrinkTimeMs === undefined ? {} : { shrinkTimeMs: c.shrinkTimeMs }),
          onProgress: (event) => {
            if (event.kind === 'step' && !event.shrinking) stats.operations++;
            if (event.kind === 'shrink-attempt') stats.shrinkAttempts++;
            if (event.kind === 'step' || event.kind === 'shrink-attempt') {
              stats.elapsedMs = c.now() - start;
              c.onEvent?.({ kind: 'progress', stats });
            }
          },
          // Live progress inside a long run; the run's coverage gives the exact count afterwards.
          onSequence: () => {
            stats.sequences++;
            stats.elapsedMs = c.now() - start;
            c.onEvent?.({ kind: 'progress', stats });
          },
        });
        stats.sequences = sequencesBefore + result.coverage.sequences;
        stats.operations = operationsBefore + result.coverage.operations;
        if (result.status === 'property-failed' && result.shrinkStoppedEarly === 'time') stats.shrinksStoppedEarly++;
        if (result.status === 'oracle-unavailable') return { stats, findings, harnessErrors, cannotRun: result.message };
        if (result.status === 'harness-error') {
          const message = `${kind} (seed ${seed}): ${result.message}`;
          harnessErrors.push(message);
          c.onEvent?.({ kind: 'harness-error', message });
        }
        if (result.status === 'property-failed') await record(await propertyCase(c, kind, result, implementation), undefined, seed, result);
      }
      stats.runs++;
      stats.elapsedMs = c.now() - start;
      c.onEvent?.({ kind: 'run', stats });
    }
  } finally {
    await fuzzer?.close();
  }
  stats.elapsedMs = c.now() - start;
  return { stats, findings, harnessErrors };
}

async function propertyCase(
  c: CampaignConstraints,
  property: PropertyName,
  run: Extract<RunResult, { status: 'property-failed' }>,
  plan: ImplementationPlan,
): Promise<PropertyFailureCase> {
  const caps = plan.capabilities;
  return {
    format: 1,
    kind: 'property-failure',
    status: 'open',
    description: `Found by a fuzz campaign: ${property} fails against ${c.impl}. Triage, then set the status and say what the case shows.`,
    implementation: c.impl,
    ...(caps === undefined ? {} : { adapter: { name: caps.name, version: caps.version } }),
    property,
    signature: runSignature(property, run),
    message: run.failure.message,
    options: run.counterexample.options,
    ops: run.counterexample.steps,
    seed: run.seed ?? 0,
    path: run.path ?? '',
    found: await provenance(c.command, new Date(c.now())),
  };
}

/** The case of a malformed-image finding; `image` is stored with it (unless rebuildable and large), `mutant` is always the bytes judged. */
async function imageCase(c: CampaignConstraints, outcome: SeedOutcome): Promise<{ case: MalformedImageCase; image: Uint8Array | undefined; mutant: Uint8Array } | undefined> {
  const shrunk = outcome.shrunk;
  const finding = shrunk?.outcome.judgement.finding;
  if (shrunk === undefined || finding === undefined) return undefined;
  const { mutant, resolved, judgement } = shrunk.outcome;
  const signature = judgementSignature(judgement, mutant.mutations.map(mutationLabel));
  if (signature === undefined) return undefined;
  const imageCase: MalformedImageCase = {
    format: 1,
    kind: 'malformed-image',
    status: 'open',
    description: `Found by the malformed-image fuzzer (${finding.finding}). Triage, then set the status and say what the case shows.`,
    implementation: 'ts',
    property: 'malformedImages',
    signature,
    finding: finding.finding,
    message: finding.message,
    verdicts: { ours: judgement.ours, qemu: judgement.qemu },
    base: mutant.base,
    mutations: mutant.mutations,
    patches: resolved.patches,
    ...(resolved.truncateTo === undefined ? {} : { truncateTo: resolved.truncateTo }),
    seed: outcome.seed,
    path: shrunk.path,
    found: await provenance(c.command, new Date(c.now())),
  };
  // A base without snapshots rebuilds byte for byte (no timestamps), so a large image need not be stored.
  const rebuildable = !mutant.base.ops.some((op) => op.kind === 'snapshotCreate');
  return { case: imageCase, image: rebuildable && resolved.bytes.length > storedImageBytesMax ? undefined : resolved.bytes, mutant: resolved.bytes };
}

/** Larger mutant images are stored only when their base cannot be rebuilt exactly. */
export const storedImageBytesMax = 256 * 1024;
