// read: a guest range compared byte for byte with the model's read. Changes nothing.
import fc from 'fast-check';
import type { ModelState } from '../../model/index.js';
import { rangeSpec, resolveRange, type RangeSpec } from '../arbitraries/range.js';
import type { ReadStep } from '../steps.js';
import { StepCommand, geometryOf } from './command.js';

export class ReadCommand extends StepCommand {
  constructor(readonly range: RangeSpec) {
    super();
  }

  resolve(state: ModelState): ReadStep {
    // reads stay in range: a read past the end is no property of the image
    return { kind: 'read', ...resolveRange(this.range, geometryOf(state)) };
  }

  protected describe(): string {
    return `read ${this.range.anchor}/${this.range.intra}/${this.range.length}`;
  }
}

export function readCommand(): fc.Arbitrary<ReadCommand> {
  return rangeSpec({ pastEndWeight: 0 }).map((range) => new ReadCommand(range));
}
