// flush: no guest-visible or structural change; with lazy refcounts it still
// writes refcount blocks (docs/semantics.md), which the structure check sees.
import fc from 'fast-check';
import type { FlushOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export class FlushCommand extends StepCommand {
  resolve(): FlushOp {
    return { kind: 'flush' };
  }

  protected describe(): string {
    return 'flush';
  }
}

export function flushCommand(): fc.Arbitrary<FlushCommand> {
  return fc.constant(null).map(() => new FlushCommand());
}
