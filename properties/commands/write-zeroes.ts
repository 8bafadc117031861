// write -z [-u]: zeroize whole clusters, explicit zeros for partial normal ones
// (docs/semantics.md). Covers allocated, unallocated, zero and shared clusters
// because its range is anchored like a write's.
import fc from 'fast-check';
import type { ModelState, WriteZeroesOp } from '../../model/index.js';
import { rangeSpec, resolveRange, type RangeSpec } from '../arbitraries/range.js';
import { StepCommand, geometryOf } from './command.js';

export class WriteZeroesCommand extends StepCommand {
  constructor(
    readonly range: RangeSpec,
    readonly unmap: boolean,
  ) {
    super();
  }

  resolve(state: ModelState): WriteZeroesOp {
    const { offset, length } = resolveRange(this.range, geometryOf(state));
    return { kind: 'writeZeroes', offset, length, unmap: this.unmap };
  }

  protected describe(): string {
    return `write -z${this.unmap ? ' -u' : ''} ${this.range.anchor}/${this.range.intra}/${this.range.length}`;
  }
}

export function writeZeroesCommand(): fc.Arbitrary<WriteZeroesCommand> {
  return fc.tuple(rangeSpec(), fc.boolean()).map(([range, unmap]) => new WriteZeroesCommand(range, unmap));
}
