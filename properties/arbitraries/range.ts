// Public front for guest ranges (write, write zeroes, discard, read).
import type fc from 'fast-check';
import { buildRangeSpec, type RangeSpec } from './_internals/range.js';

export type { RangeSpec } from './_internals/range.js';
export { resolveRange, multiClustersMax } from './_internals/range.js';

export interface RangeConstraints {
  /** Relative weight of ranges that run past the end of the disk (out-of-range errors). Default 1 (of 12). */
  readonly pastEndWeight?: number;
}

export function qualifyRangeConstraints(c: RangeConstraints = {}): Required<RangeConstraints> {
  const pastEndWeight = c.pastEndWeight ?? 1;
  if (!Number.isSafeInteger(pastEndWeight) || pastEndWeight < 0) {
    throw new RangeError(`pastEndWeight must be a non-negative integer, got ${pastEndWeight}`);
  }
  return { pastEndWeight };
}

export function rangeSpec(constraints: RangeConstraints = {}): fc.Arbitrary<RangeSpec> {
  return buildRangeSpec(qualifyRangeConstraints(constraints).pastEndWeight);
}
