// Machine report: the RunResult as JSON, with the wrapped cause reduced to its
// name, message and stack (an Error does not serialise), and each step also as
// its qemu-io line.
import { formatStep } from '../steps.js';
import type { RunResult } from './run-result.js';

function serialiseCause(cause: unknown): unknown {
  if (cause instanceof Error) return { name: cause.name, message: cause.message, stack: cause.stack };
  // a cause that crossed from a worker thread is already { name, message, stack }
  if (isReducedError(cause)) return { name: cause.name, message: cause.message, stack: cause.stack };
  return cause === undefined ? undefined : String(cause);
}

function isReducedError(cause: unknown): cause is { name: string; message: string; stack?: string } {
  if (typeof cause !== 'object' || cause === null) return false;
  const c = cause as Record<string, unknown>;
  return typeof c.name === 'string' && typeof c.message === 'string';
}

export function toJsonValue(r: RunResult): Record<string, unknown> {
  const out: Record<string, unknown> = { ...r };
  if ('cause' in r) out.cause = serialiseCause(r.cause);
  if ('counterexample' in r && r.counterexample !== undefined) {
    out.script = r.counterexample.steps.map(formatStep);
  }
  return out;
}

export function formatJson(results: readonly RunResult[]): string {
  return `${JSON.stringify({ results: results.map(toJsonValue) }, null, 2)}\n`;
}
