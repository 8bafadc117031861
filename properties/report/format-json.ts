// Machine report: the RunResult as JSON, with the wrapped cause reduced to its
// name, message and stack (an Error does not serialise), and each step also as
// its qemu-io line.
import { formatStep } from '../steps.js';
import type { RunResult } from './run-result.js';

function serialiseCause(cause: unknown): unknown {
  if (cause instanceof Error) return { name: cause.name, message: cause.message, stack: cause.stack };
  return cause === undefined ? undefined : String(cause);
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
