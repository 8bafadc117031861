// Which snapshot a revert or delete names, picked by index when the command
// runs (fast-check's GoToTrackCommand): by its name, by its ID (which `-a`
// finds and `-d` does not, unless another snapshot is named so), or a name that
// does not exist, to check the unknown-snapshot refusal.
import fc from 'fast-check';
import type { ModelState } from '../../model/index.js';

export type SnapshotTargetKind = 'name' | 'id' | 'missing';

export interface SnapshotTarget {
  readonly index: number;
  readonly by: SnapshotTargetKind;
}

/** A name no generated snapshot has (generated names are words, numbers or empty, never with "missing"). */
export const missingSnapshotName = 'missing-snapshot';

export function resolveSnapshotName(target: SnapshotTarget, state: ModelState): string {
  const picked = state.snapshots[target.index % Math.max(1, state.snapshots.length)];
  if (target.by === 'missing' || picked === undefined) return missingSnapshotName;
  return target.by === 'id' ? picked.id : picked.name;
}

export function describeTarget(target: SnapshotTarget): string {
  if (target.by === 'missing') return missingSnapshotName;
  return target.by === 'id' ? `<ID of #${target.index}>` : `#${target.index}`;
}

export function snapshotTarget(): fc.Arbitrary<SnapshotTarget> {
  return fc.record({
    index: fc.nat({ max: 15 }),
    by: fc.oneof(
      { arbitrary: fc.constant<SnapshotTargetKind>('name'), weight: 6 },
      { arbitrary: fc.constant<SnapshotTargetKind>('id'), weight: 2 },
      { arbitrary: fc.constant<SnapshotTargetKind>('missing'), weight: 1 },
    ),
  });
}
