// write: guest data over a symbolic range. Content is the `seed` stream most of
// the time (a different byte at every offset, so an off-by-some-bytes bug inside
// a cluster shows) and a constant `pattern` otherwise.
import fc from 'fast-check';
import type { ModelState, WriteOp } from '../../model/index.js';
import { rangeSpec, resolveRange, type RangeSpec } from '../arbitraries/range.js';
import { StepCommand, geometryOf } from './command.js';

export interface WriteContent {
  readonly pattern: number;
  readonly seed: number | undefined;
}

export class WriteCommand extends StepCommand {
  constructor(
    readonly range: RangeSpec,
    readonly content: WriteContent,
  ) {
    super();
  }

  resolve(state: ModelState): WriteOp {
    const { offset, length } = resolveRange(this.range, geometryOf(state));
    const op: WriteOp = { kind: 'write', offset, length, pattern: this.content.pattern };
    return this.content.seed === undefined ? op : { ...op, seed: this.content.seed };
  }

  protected describe(): string {
    return `write ${this.range.anchor}/${this.range.intra}/${this.range.length}`;
  }
}

export function writeCommand(): fc.Arbitrary<WriteCommand> {
  const content: fc.Arbitrary<WriteContent> = fc.oneof(
    { arbitrary: fc.record({ pattern: fc.constant(0), seed: fc.integer({ min: 1, max: 0x7fffffff }) }), weight: 3 },
    { arbitrary: fc.record({ pattern: fc.integer({ min: 0, max: 255 }), seed: fc.constant(undefined) }), weight: 1 },
  );
  return fc.tuple(rangeSpec(), content).map(([range, c]) => new WriteCommand(range, c));
}
