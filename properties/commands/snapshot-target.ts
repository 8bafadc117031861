// Which snapshot a revert or delete names: an existing one picked by index when
// the command runs (fast-check's GoToTrackCommand), or sometimes a name that does
// not exist, to check the unknown-snapshot refusal.
import fc from 'fast-check';
import type { ModelState } from '../../model/index.js';

export interface SnapshotTarget {
  readonly index: number;
  readonly missing: boolean;
}

/** A name no generated snapshot has (generated names are words, never with "missing"). */
export const missingSnapshotName = 'missing-snapshot';

export function resolveSnapshotName(target: SnapshotTarget, state: ModelState): string {
  const n = state.snapshots.length;
  const picked = state.snapshots[target.index % Math.max(1, n)];
  if (target.missing || picked === undefined) return missingSnapshotName;
  return picked.name;
}

export function describeTarget(target: SnapshotTarget): string {
  return target.missing ? missingSnapshotName : `#${target.index}`;
}

export function snapshotTarget(): fc.Arbitrary<SnapshotTarget> {
  return fc.record({
    index: fc.nat({ max: 15 }),
    missing: fc.oneof({ arbitrary: fc.constant(false), weight: 8 }, { arbitrary: fc.constant(true), weight: 1 }),
  });
}
