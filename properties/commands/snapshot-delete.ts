// snapshot -d: drop an existing snapshot (its L2 tables and data lose a
// reference each), or name a missing one.
import type fc from 'fast-check';
import type { ModelState, SnapshotDeleteOp } from '../../model/index.js';
import { StepCommand } from './command.js';
import { describeTarget, resolveSnapshotName, snapshotTarget, type SnapshotTarget } from './snapshot-target.js';

export class SnapshotDeleteCommand extends StepCommand {
  constructor(readonly target: SnapshotTarget) {
    super();
  }

  resolve(state: ModelState): SnapshotDeleteOp {
    return { kind: 'snapshotDelete', name: resolveSnapshotName(this.target, state) };
  }

  protected describe(): string {
    return `snapshot -d ${describeTarget(this.target)}`;
  }
}

export function snapshotDeleteCommand(): fc.Arbitrary<SnapshotDeleteCommand> {
  return snapshotTarget().map((t) => new SnapshotDeleteCommand(t));
}
