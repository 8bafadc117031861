// commit: the image into its backing file. Where the model does not predict
// QEMU's allocation (a raw backing file, image clusters smaller than mirror's
// granule: see model/chain-ops.ts; an image with subclusters, whose
// allocation mirror reads per byte) the command is a flush instead.
import fc from 'fast-check';
import { geometry, type CommitOp, type FlushOp, type ModelState } from '../../model/index.js';
import { StepCommand } from './command.js';

/** Mirror's copy granule for a backing file with this cluster size (bdrv_get_default_bitmap_granularity). */
function granuleBytes(clusterSize: number): number {
  return Math.min(65536, Math.max(4096, clusterSize));
}

export class CommitCommand extends StepCommand {
  resolve(state: ModelState): CommitOp | FlushOp {
    const backing = state.backing;
    if (backing === undefined) return { kind: 'commit' }; // refused: no backing file
    if (backing.format === 'raw' || state.options.extendedL2 === true) return { kind: 'flush' };
    const granule = granuleBytes(geometry(backing.image.options).clusterSize);
    return geometry(state.options).clusterSize >= granule ? { kind: 'commit' } : { kind: 'flush' };
  }

  protected describe(): string {
    return 'commit';
  }
}

export function commitCommand(): fc.Arbitrary<CommitCommand> {
  return fc.constant(new CommitCommand());
}
