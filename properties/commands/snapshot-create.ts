// snapshot -c: names are non-numeric (so that lookup by name never hits an ID)
// and made unique when the command runs, by a suffix if the drawn name is taken.
import fc from 'fast-check';
import type { ModelState, SnapshotCreateOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export class SnapshotCreateCommand extends StepCommand {
  constructor(readonly baseName: string) {
    super();
  }

  resolve(state: ModelState): SnapshotCreateOp {
    const taken = new Set(state.snapshots.map((s) => s.name));
    let name = this.baseName;
    for (let i = 2; taken.has(name); i++) name = `${this.baseName}-${i}`;
    return { kind: 'snapshotCreate', name };
  }

  protected describe(): string {
    return `snapshot -c ${this.baseName}`;
  }
}

const words = ['base', 'before', 'after', 'clean', 'golden', 'pre', 'post', 'snap'];

export function snapshotCreateCommand(): fc.Arbitrary<SnapshotCreateCommand> {
  return fc.constantFrom(...words).map((w) => new SnapshotCreateCommand(w));
}
