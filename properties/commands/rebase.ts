// rebase: onto a layer further down the chain, the same backing file, or no
// backing file; safe or unsafe (-u). A safe rebase of an image with
// subclusters is a flush instead: img_rebase asks allocation per byte, the
// model answers per cluster (model/chain-ops.ts).
import fc from 'fast-check';
import { backingLayers, type FlushOp, type ModelState, type RebaseOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export class RebaseCommand extends StepCommand {
  constructor(
    readonly depthChoice: number,
    readonly unsafe: boolean,
  ) {
    super();
  }

  resolve(state: ModelState): RebaseOp | FlushOp {
    if (!this.unsafe && state.options.extendedL2 === true) return { kind: 'flush' };
    const layers = backingLayers(state).length;
    return { kind: 'rebase', depth: this.depthChoice % (layers + 1), unsafe: this.unsafe };
  }

  protected describe(): string {
    return `rebase ${this.unsafe ? '-u ' : ''}depth#${this.depthChoice}`;
  }
}

export function rebaseCommand(): fc.Arbitrary<RebaseCommand> {
  return fc.tuple(fc.nat({ max: 7 }), fc.boolean()).map(([depth, unsafe]) => new RebaseCommand(depth, unsafe));
}
