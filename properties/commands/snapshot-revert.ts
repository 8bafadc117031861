// snapshot -a: revert the active view to an existing snapshot (resizing first
// when its disk size differs), or name a missing one.
import type fc from 'fast-check';
import type { ModelState, SnapshotRevertOp } from '../../model/index.js';
import { StepCommand } from './command.js';
import { describeTarget, resolveSnapshotName, snapshotTarget, type SnapshotTarget } from './snapshot-target.js';

export class SnapshotRevertCommand extends StepCommand {
  constructor(readonly target: SnapshotTarget) {
    super();
  }

  resolve(state: ModelState): SnapshotRevertOp {
    return { kind: 'snapshotRevert', name: resolveSnapshotName(this.target, state) };
  }

  protected describe(): string {
    return `snapshot -a ${describeTarget(this.target)}`;
  }
}

export function snapshotRevertCommand(): fc.Arbitrary<SnapshotRevertCommand> {
  return snapshotTarget().map((t) => new SnapshotRevertCommand(t));
}
