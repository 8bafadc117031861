// Faults as steps of a sequence (issue 15): a crash, and an operation that
// meets an injected I/O error. Like a read, they are not model Ops: the model
// answers them with a set of allowed images (model/crash.ts), not one state.
import type { BlkdebugEvent } from '../../oracle/index.js';
import {
  formatOp,
  type ModelState,
  type DiscardOp,
  type FlushOp,
  type ResizeOp,
  type SnapshotCreateOp,
  type SnapshotDeleteOp,
  type SnapshotRevertOp,
  type WriteCompressedOp,
  type WriteOp,
  type WriteZeroesOp,
} from '../../model/index.js';

/**
 * Power is lost: the image file becomes one of the states the disk could hold
 * (impl/io/fault-file.ts, chosen by `seed`) and is opened again read-write
 * (a dirty lazy-refcounts image is repaired as it opens). With `during`, the
 * power goes inside that operation, at its Nth write or flush (between the
 * barriers of a metadata flush, say); without, between two operations.
 */
export interface CrashStep {
  readonly kind: 'crash';
  readonly seed: number;
  readonly during?: {
    readonly op: CrashableOp;
    readonly access: 'write' | 'flush';
    readonly nth: number;
    /**
     * QEMU only (properties/faults/qemu-fault-driver.ts, killDuring): the
     * blkdebug event whose first occurrence, in the op or the flush after it,
     * holds the request at a break point where qemu-io is killed. Our engine
     * counts file accesses instead and ignores it. Absent (a case saved
     * before kills inside ops): the first event the op reaches (qemuEventsByOp).
     */
    readonly event?: BlkdebugEvent;
  };
}

/** The operations a crash is drawn inside. */
export type CrashableOp = FaultableOp;

/** The snapshot operations: a fault inside one leaves the snapshot whole or absent (docs/semantics.md, "Faults"). */
export type SnapshotOp = SnapshotCreateOp | SnapshotDeleteOp | SnapshotRevertOp;

/** The operations an I/O error is injected into: guest ops (compressed writes too), flush and the snapshot ops. */
export type FaultableOp = WriteOp | WriteCompressedOp | WriteZeroesOp | DiscardOp | ResizeOp | FlushOp | SnapshotOp;

export function isSnapshotOp(op: { readonly kind: string }): op is SnapshotOp {
  return op.kind === 'snapshotCreate' || op.kind === 'snapshotDelete' || op.kind === 'snapshotRevert';
}

/**
 * `op` runs with its `nth` file access of kind `access` (counted from the
 * op's start) failing with `errno`, once or on every later access too until
 * the op ends; then the fault is cleared and the op is retried.
 */
export interface IoErrorStep {
  readonly kind: 'ioError';
  readonly op: FaultableOp;
  readonly access: 'read' | 'write' | 'flush';
  readonly nth: number;
  readonly errno: 'EIO' | 'ENOSPC';
  readonly persistent: boolean;
  /**
   * QEMU only (properties/faults/qemu-fault-driver.ts): the blkdebug event at
   * whose `nth` occurrence the error is injected; `access` then plays no part.
   * Our engine counts file accesses instead and ignores it. Absent: the event
   * of `access` (qemuDefaultEvents).
   */
  readonly event?: BlkdebugEvent;
  /**
   * QEMU only: which occurrence of `event` (1 = the first), counted from the
   * open of the process that runs the op. Absent (a case saved before it was
   * drawn apart): `nth`. Most events come once per op, so it is drawn
   * mostly 1, where `nth` counts file accesses, of which an op makes several.
   */
  readonly occurrence?: number;
}

export type FaultStep = CrashStep | IoErrorStep;

/** What a fault step left, for the checks that follow it (Check.afterFault). */
export interface FaultResult {
  readonly step: FaultStep;
  /**
   * The model state the operation inside the fault reached (before a crash
   * state was adopted): its clusters may be in the file. For a crash between
   * operations, the state before the crash.
   */
  readonly reached: ModelState;
  /** Leaked clusters the checker found right after the fault: the most the image may hold from now on. */
  readonly leakedClusters: number;
}

export function isFaultStep(step: { readonly kind: string }): step is FaultStep {
  return step.kind === 'crash' || step.kind === 'ioError';
}

/** One line: `crash <seed 7>` (qemu-io `sigraise 9` at that point), `ioError write#2 EIO once: write -P 0xab 0x0 0x200`. */
export function formatFaultStep(step: FaultStep): string {
  if (step.kind === 'crash') {
    const d = step.during;
    if (d === undefined) return `crash <seed ${step.seed}>`;
    return `crash <seed ${step.seed}> at ${d.access}#${d.nth}${d.event === undefined ? '' : ` (blkdebug break ${d.event})`} of: ${formatOp(d.op)}`;
  }
  const event = step.event === undefined ? '' : ` (blkdebug ${step.event}${step.occurrence === undefined ? '' : `#${step.occurrence}`})`;
  return `ioError ${step.access}#${step.nth} ${step.errno} ${step.persistent ? 'until-cleared' : 'once'}${event}: ${formatOp(step.op)}`;
}

/** The occurrence of its blkdebug event a step fails at on QEMU. */
export function qemuOccurrence(step: IoErrorStep): number {
  return step.occurrence ?? step.nth;
}

/** The blkdebug event of a step that names none (a case saved before events were drawn): the one its access reaches first. */
export const qemuDefaultEvents: Readonly<Record<IoErrorStep['access'], BlkdebugEvent>> = {
  read: 'read_aio',
  write: 'write_aio',
  flush: 'flush_to_disk',
};
