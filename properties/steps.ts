// What a sequence is made of, as data: the model's operations plus guest reads.
// A shrunk counterexample is a list of these, printed as a qemu-io script and
// replayed by replayOps without fast-check.
import { formatOp, type Op } from '../model/index.js';
import { formatFaultStep, isFaultStep, type FaultStep } from './faults/fault-step.js';

/** A guest read checked against the model (qemu-io `read`). Not an Op: it changes nothing. */
export interface ReadStep {
  readonly kind: 'read';
  readonly offset: number;
  readonly length: number;
}

export type Step = Op | ReadStep | FaultStep;

export function isReadStep(step: Step): step is ReadStep {
  return step.kind === 'read';
}

/** One line of qemu-io syntax (snapshot lines are `qemu-img snapshot` arguments). */
export function formatStep(step: Step): string {
  if (isReadStep(step)) return `read 0x${step.offset.toString(16)} 0x${step.length.toString(16)}`;
  if (isFaultStep(step)) return formatFaultStep(step);
  return formatOp(step);
}

/** The whole sequence as a script, one step per line. */
export function formatSteps(steps: readonly Step[]): string {
  return steps.map(formatStep).join('\n');
}

/** The first offset where two byte arrays differ, or -1 when they are equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  // equal prefixes are the common case: one memcmp instead of a loop over every byte (whole disks of 8 MiB)
  if (Buffer.compare(a.subarray(0, n), b.subarray(0, n)) !== 0) {
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  }
  return a.length === b.length ? -1 : n;
}
