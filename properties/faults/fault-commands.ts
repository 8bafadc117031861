// The fault commands the generators draw (issue 15): a crash with the seed of
// its crash state, and a guest operation that meets an I/O error at its Nth
// read, write or flush. Both shrink like any command (the seed to 0, the
// operation as its own command shrinks, nth towards the first access).
import fc from 'fast-check';
import type { ModelState } from '../../model/index.js';
import type { SequenceCommand } from '../arbitraries/sequence.js';
import { StepCommand } from '../commands/command.js';
import { discardCommand } from '../commands/discard.js';
import { resizeCommand } from '../commands/resize.js';
import { writeZeroesCommand } from '../commands/write-zeroes.js';
import { writeCommand } from '../commands/write.js';
import type { CrashStep, FaultableOp, IoErrorStep } from './fault-step.js';

/** Largest `nth`: an op makes a handful of file accesses, so most draws meet the fault. */
export const ioErrorNthMax = 6;

export class CrashCommand extends StepCommand {
  constructor(readonly seed: number) {
    super();
  }
  resolve(): CrashStep {
    return { kind: 'crash', seed: this.seed };
  }
  protected describe(): string {
    return `crash ${this.seed}`;
  }
}

type Fault = Omit<IoErrorStep, 'kind' | 'op'>;

export class IoErrorCommand extends StepCommand {
  constructor(
    readonly inner: StepCommand,
    readonly fault: Fault,
  ) {
    super();
  }
  resolve(state: ModelState): IoErrorStep {
    // the inner command is one of the faultable ops (ioErrorCommand draws only those)
    return { kind: 'ioError', op: this.inner.resolve(state) as FaultableOp, ...this.fault };
  }
  protected describe(): string {
    return `ioError ${this.fault.access}#${this.fault.nth}: ${this.inner.toString()}`;
  }
}

export function crashCommand(): fc.Arbitrary<CrashCommand> {
  return fc.nat().map((seed) => new CrashCommand(seed));
}

export function ioErrorCommand(): fc.Arbitrary<IoErrorCommand> {
  const inner: fc.Arbitrary<StepCommand> = fc.oneof(
    { arbitrary: writeCommand(), weight: 4 },
    { arbitrary: writeZeroesCommand(), weight: 1 },
    { arbitrary: discardCommand(), weight: 1 },
    { arbitrary: resizeCommand(), weight: 1 },
  );
  const fault: fc.Arbitrary<Fault> = fc.record({
    access: fc.constantFrom('write' as const, 'flush' as const, 'read' as const),
    nth: fc.integer({ min: 1, max: ioErrorNthMax }),
    errno: fc.constantFrom('EIO' as const, 'ENOSPC' as const),
    persistent: fc.boolean(),
  });
  return fc.tuple(inner, fault).map(([op, f]) => new IoErrorCommand(op, f));
}

/** The fault commands with their weights among the others (guest writes weigh 6 to 24). */
export function faultCommands(): readonly { readonly arbitrary: fc.Arbitrary<SequenceCommand>; readonly weight: number }[] {
  return [
    { arbitrary: crashCommand(), weight: 4 },
    { arbitrary: ioErrorCommand(), weight: 6 },
  ];
}
