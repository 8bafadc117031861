// discard: whole clusters only; partial ones are ignored, the last cluster of
// the disk counts as whole when the range reaches virtualSize.
import fc from 'fast-check';
import type { DiscardOp, ModelState } from '../../model/index.js';
import { rangeSpec, resolveRange, type RangeSpec } from '../arbitraries/range.js';
import { StepCommand, geometryOf } from './command.js';

export class DiscardCommand extends StepCommand {
  constructor(readonly range: RangeSpec) {
    super();
  }

  resolve(state: ModelState): DiscardOp {
    const { offset, length } = resolveRange(this.range, geometryOf(state));
    return { kind: 'discard', offset, length };
  }

  protected describe(): string {
    return `discard ${this.range.anchor}/${this.range.intra}/${this.range.length}`;
  }
}

export function discardCommand(): fc.Arbitrary<DiscardCommand> {
  return rangeSpec().map((range) => new DiscardCommand(range));
}
