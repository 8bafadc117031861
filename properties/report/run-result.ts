// What one property run produced, as data first (style.md §8): the formatters
// (text, JSON, JUnit) and the CLI's exit code are all derived from it.
import type { ImageOptions } from '../../model/index.js';
import type { SwarmWeights } from '../arbitraries/swarm.js';
import type { Coverage } from '../coverage.js';
import type { ImplName } from '../driver.js';
import type { Step } from '../steps.js';
import type { CheckName } from '../violation.js';

interface RunCommon {
  readonly property: string;
  readonly impl: ImplName;
  /** fast-check seed; absent for replayOps. */
  readonly seed?: number;
  /** Sequences run (including the failing one, excluding shrink attempts). */
  readonly runs: number;
  /** Set when the run stopped drawing sequences because its deadline (the time budget) passed. */
  readonly stoppedEarly?: 'time';
  readonly coverage: Coverage;
  /** Wall time in milliseconds, from the clock the caller passed (0 when none). */
  readonly timeMs: number;
}

export interface Counterexample {
  readonly options: ImageOptions;
  /** Absent for a replayed explicit sequence. */
  readonly swarm?: SwarmWeights;
  /** The steps executed, up to and including the one that failed. */
  readonly steps: readonly Step[];
}

/**
 * Why a property failed: a check saw a divergence, or the implementation crashed
 * (threw something that is no refusal; an AssertionError of its own is a crash
 * with `assertion`).
 */
export type Failure =
  | { readonly kind: 'violation'; readonly check: CheckName; readonly message: string }
  | { readonly kind: 'implementation-error'; readonly assertion: boolean; readonly operation: string; readonly message: string };

export type RunResult =
  | (RunCommon & { readonly status: 'passed' })
  | (RunCommon & {
      readonly status: 'property-failed';
      readonly path?: string;
      readonly counterexample: Counterexample;
      readonly shrinks: number;
      /**
       * Set when shrinking stopped before a fixpoint: its deadline passed, its
       * attempt cap was reached, or the implementation hung (every attempt
       * would wait out a request timeout).
       */
      readonly shrinkStoppedEarly?: 'time' | 'attempts' | 'hang';
      readonly failure: Failure;
      readonly replay: string;
      readonly cause: unknown;
    })
  | (RunCommon & { readonly status: 'oracle-unavailable'; readonly message: string; readonly cause: unknown })
  | (RunCommon & {
      readonly status: 'harness-error';
      readonly message: string;
      readonly path?: string;
      readonly counterexample?: Counterexample;
      readonly cause: unknown;
    });

export type RunStatus = RunResult['status'];

/** One shell word: as it is when it is safe, else single-quoted (a cmd: implementation's command line has spaces). */
export function shellQuote(word: string): string {
  return /^[\w.,:@%+=/-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The implementation as one file-name word: a cmd: one's command line reduced to letters, digits and dashes. */
export function implFileWord(impl: ImplName): string {
  return impl.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
}

/** The command line that reproduces a failing run exactly. */
export function replayCommand(impl: ImplName, property: string, seed: number, path: string | undefined): string {
  const pathPart = path === undefined ? '' : ` --path ${JSON.stringify(path)}`;
  return `qcow2-verify gate --impl ${shellQuote(impl)} --property ${property} --seed ${seed}${pathPart}`;
}
