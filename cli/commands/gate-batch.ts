// One unit of the gate's work: a batch of sequences of one property with its
// own seed, run by runProperty either in this thread or in a worker thread
// (gate-worker.ts). A batch is plain data both ways, so the same batch gives
// the same sequences wherever it runs, and a failure replays from the seed and
// path it prints (`gate --seed <batch seed> --property P --path …`).
import { runProperty, type ImplName, type PropertyName, type RunResult } from '../../properties/index.js';
import type { RunProgress } from '../../properties/runner.js';
import { formatOptions, formatSwarm } from '../../properties/index.js';
import { toJsonValue } from '../../properties/report/format-json.js';

export interface Batch {
  readonly property: PropertyName;
  readonly impl: ImplName;
  /** The batch's seed: the gate's seed for the first batch of a property, a derived one after. */
  readonly seed: number;
  readonly numRuns: number;
  readonly path?: string;
  /** Epoch milliseconds (`epochNow`): no sequence starts after it, the first excepted. */
  readonly deadline?: number;
  /** Epoch milliseconds: even the batch's first sequence is cut off there. */
  readonly hardDeadline?: number;
  /** Epoch milliseconds: shrinking stops there with the smallest failure so far. */
  readonly shrinkDeadline?: number;
  /** Milliseconds: each failure's shrinking stops this long after it was found (`--shrink-time`). */
  readonly shrinkTimeMs?: number;
  /** Report each drawn sequence's options and swarm (`--verbose`). */
  readonly verbose: boolean;
  /** A cmd: implementation's request timeout (`--request-timeout`). */
  readonly requestTimeoutMs?: number;
}

/** What a batch reports while it runs: progress, and with `--verbose` one line per drawn sequence. */
export type BatchEvent = { readonly kind: 'progress'; readonly progress: RunProgress } | { readonly kind: 'sequence'; readonly line: string };

/**
 * Milliseconds since the epoch with sub-millisecond precision, the same in
 * every thread (performance.now() alone starts at each thread's own origin).
 */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs one batch in this thread. */
export function runBatch(b: Batch, onEvent: (e: BatchEvent) => void): Promise<RunResult> {
  return runProperty({
    property: b.property,
    impl: b.impl,
    seed: b.seed,
    numRuns: b.numRuns,
    ...(b.path === undefined ? {} : { path: b.path }),
    ...(b.deadline === undefined ? {} : { deadline: b.deadline }),
    ...(b.hardDeadline === undefined ? {} : { hardDeadline: b.hardDeadline }),
    ...(b.shrinkDeadline === undefined ? {} : { shrinkDeadline: b.shrinkDeadline }),
    ...(b.shrinkTimeMs === undefined ? {} : { shrinkTimeMs: b.shrinkTimeMs }),
    ...(b.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: b.requestTimeoutMs }),
    now: epochNow,
    onProgress: (progress) => onEvent({ kind: 'progress', progress }),
    ...(b.verbose ? { onSequence: (opt, swarm) => onEvent({ kind: 'sequence', line: `  [${b.property}] ${formatOptions(opt)}; swarm ${formatSwarm(swarm)}` }) } : {}),
  });
}

/**
 * A RunResult as it crosses a thread: the cause (an Error, whose class does
 * not survive structured cloning) is reduced to name, message and stack, as
 * the JSON report does.
 */
export function portableResult(r: RunResult): RunResult {
  if (!('cause' in r)) return r;
  return { ...r, cause: toJsonValue(r).cause } as RunResult;
}
