// reopen: close (flush, clear the dirty bit) and open read-write again; with a
// dirty lazy-refcount image the open rebuilds refcounts. The model does not change.
import fc from 'fast-check';
import type { ReopenOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export class ReopenCommand extends StepCommand {
  resolve(): ReopenOp {
    return { kind: 'reopen' };
  }

  protected describe(): string {
    return 'reopen';
  }
}

export function reopenCommand(): fc.Arbitrary<ReopenCommand> {
  return fc.constant(null).map(() => new ReopenCommand());
}
