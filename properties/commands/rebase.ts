// rebase: onto a layer further down the chain, the same backing file, or no
// backing file; safe or unsafe (-u). A safe rebase onto a deeper layer of the
// chain when the image is longer than its backing file is drawn as a rebase
// onto no backing file instead: qemu-img 7.2 never finishes it (img_rebase,
// bdrv_is_allocated_above past the old backing file's end makes no progress;
// fixed after 7.2), see docs/semantics.md.
import fc from 'fast-check';
import { backingLayers, backingSize, type ModelState, type RebaseOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export class RebaseCommand extends StepCommand {
  constructor(
    readonly depthChoice: number,
    readonly unsafe: boolean,
  ) {
    super();
  }

  resolve(state: ModelState): RebaseOp {
    const layers = backingLayers(state).length;
    let depth = this.depthChoice % (layers + 1);
    if (!this.unsafe && depth >= 2 && state.backing !== undefined && state.options.virtualSize > backingSize(state.backing)) depth = 0;
    return { kind: 'rebase', depth, unsafe: this.unsafe };
  }

  protected describe(): string {
    return `rebase ${this.unsafe ? '-u ' : ''}depth#${this.depthChoice}`;
  }
}

export function rebaseCommand(): fc.Arbitrary<RebaseCommand> {
  return fc.tuple(fc.nat({ max: 7 }), fc.boolean()).map(([depth, unsafe]) => new RebaseCommand(depth, unsafe));
}
