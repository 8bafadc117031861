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
import { writeCompressedCommand } from '../commands/write-compressed.js';
import type { CrashableOp, CrashStep, FaultableOp, IoErrorStep } from './fault-step.js';
import { flushCommand } from '../commands/flush.js';
import { qemuEventFor } from './qemu-events.js';
import { snapshotCreateCommand } from '../commands/snapshot-create.js';
import { snapshotDeleteCommand } from '../commands/snapshot-delete.js';
import { snapshotRevertCommand } from '../commands/snapshot-revert.js';

/** Largest `nth` of an I/O error: an op makes a handful of file accesses. */
export const ioErrorNthMax = 6;

/**
 * Where QEMU meets a fault (a blkdebug event), as an index into the events the
 * op reaches (qemu-events.ts): the op is known only when the command resolves.
 */
type EventPick = number;

type Inside = { readonly inner: StepCommand; readonly access: 'write' | 'flush'; readonly nth: number; readonly eventPick: EventPick };

export class CrashCommand extends StepCommand {
  constructor(
    readonly seed: number,
    readonly inside: Inside | undefined,
  ) {
    super();
  }
  resolve(state: ModelState): CrashStep {
    if (this.inside === undefined) return { kind: 'crash', seed: this.seed };
    const { inner, access, nth, eventPick } = this.inside;
    // the inner command is one of the crashable ops (crashCommand draws only those)
    const op = inner.resolve(state) as CrashableOp;
    return { kind: 'crash', seed: this.seed, during: { op, access, nth, event: qemuEventFor(op, state, eventPick) } };
  }
  protected describe(): string {
    return `crash ${this.seed}`;
  }
}

type Fault = Omit<IoErrorStep, 'kind' | 'op' | 'event'> & { readonly eventPick: EventPick };

export class IoErrorCommand extends StepCommand {
  constructor(
    readonly inner: StepCommand,
    readonly fault: Fault,
  ) {
    super();
  }
  resolve(state: ModelState): IoErrorStep {
    // the inner command is one of the faultable ops (ioErrorCommand draws only those)
    const op = this.inner.resolve(state) as FaultableOp;
    const { eventPick, ...fault } = this.fault;
    return { kind: 'ioError', op, ...fault, event: qemuEventFor(op, state, eventPick) };
  }
  protected describe(): string {
    return `ioError ${this.fault.access}#${this.fault.nth}: ${this.inner.toString()}`;
  }
}

/** Largest `nth` of a crash inside an op: a metadata flush makes a few writes and up to five barriers. */
export const crashNthMax = 12;

/**
 * The ops a fault is drawn inside. A guest op writes its data and leaves its
 * metadata to the next flush (or a cache eviction), so flushes weigh as much
 * as writes: they are where the metadata phases are. The snapshot ops write
 * the snapshot table, L1 copies and the counts and flags they change.
 */
function faultableCommand(): fc.Arbitrary<StepCommand> {
  return fc.oneof(
    { arbitrary: flushCommand(), weight: 4 },
    { arbitrary: writeCommand(), weight: 3 },
    { arbitrary: writeCompressedCommand(), weight: 1 },
    { arbitrary: writeZeroesCommand(), weight: 1 },
    { arbitrary: discardCommand(), weight: 1 },
    { arbitrary: resizeCommand(), weight: 1 },
    { arbitrary: snapshotCreateCommand(), weight: 1 },
    { arbitrary: snapshotDeleteCommand(), weight: 1 },
    { arbitrary: snapshotRevertCommand(), weight: 1 },
  );
}

/** The Nth access: most often one of the first few, which nearly every op makes. */
function nth(max: number): fc.Arbitrary<number> {
  return fc.oneof({ arbitrary: fc.integer({ min: 1, max: 3 }), weight: 3 }, { arbitrary: fc.integer({ min: 1, max }), weight: 1 });
}

export function crashCommand(): fc.Arbitrary<CrashCommand> {
  const inside: fc.Arbitrary<Inside> = fc.record({
    inner: faultableCommand(),
    access: fc.constantFrom('write' as const, 'flush' as const),
    nth: nth(crashNthMax),
    eventPick: fc.nat(),
  });
  // fc.option shrinks to a crash between operations first
  return fc.tuple(fc.nat(), fc.option(inside, { nil: undefined, freq: 4 })).map(([seed, i]) => new CrashCommand(seed, i));
}

export function ioErrorCommand(): fc.Arbitrary<IoErrorCommand> {
  const inner = faultableCommand();
  const fault: fc.Arbitrary<Fault> = fc.record({
    access: fc.constantFrom('write' as const, 'flush' as const, 'read' as const),
    nth: nth(ioErrorNthMax),
    errno: fc.constantFrom('EIO' as const, 'ENOSPC' as const),
    persistent: fc.boolean(),
    // where QEMU meets it (blkdebug); our engine counts accesses and ignores both
    eventPick: fc.nat(),
    occurrence: fc.oneof({ arbitrary: fc.constant(1), weight: 4 }, { arbitrary: fc.integer({ min: 2, max: 3 }), weight: 1 }),
  });
  return fc.tuple(inner, fault).map(([op, f]) => new IoErrorCommand(op, f));
}

/** The fault commands with their weights among the others (guest writes weigh 6 to 24). */
export function faultCommands(): readonly { readonly arbitrary: fc.Arbitrary<SequenceCommand>; readonly weight: number }[] {
  return [
    { arbitrary: crashCommand(), weight: 6 },
    { arbitrary: ioErrorCommand(), weight: 6 },
  ];
}
