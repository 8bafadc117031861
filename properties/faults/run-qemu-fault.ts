// Running a fault step on QEMU (docs/semantics.md, "Faults", QEMU 7.2): the
// same contract as for our engine (run-fault.ts), through what QEMU offers.
//
// A crash is SIGKILL of qemu-io between two operations, or inside one: the op
// and a flush run in a qemu-io on blkdebug with a break point at the drawn
// event, killed from outside when a request is held there (or after the
// flush, when none was). The image is repaired as iotest 039 does when
// lazy refcounts left it dirty; then `qemu-img check` and the model's checker
// find no corruption (leaks allowed), every sector reads as a state since the
// last durable op, and the model adopts the image.
// An I/O error: the op runs in a qemu-io process on blkdebug, failing at the
// nth occurrence of the drawn event. It answers `io`, or it answers as the
// model says (the event was not reached, or a flush after it failed: qemu-io's
// flush prints nothing, its exit status says so). With a once-error a failed
// op is retried in the same process and must succeed. After that process
// quits, the image is judged like a
// crash's; it must read exactly as after the op when the op succeeded in the
// process and its final flush did not fail, else as before or after it; then
// the op is retried in a fresh process and must answer as the model says.
import { QemuImgError, type BlkdebugEvent } from '../../oracle/index.js';
import { backingLayers, bufferReader, checkWith, disallowedAfterFault, stateFromImage, step as modelStep, type ModelState, type Outcome } from '../../model/index.js';
import { compareWholeDisk } from '../checks/whole-disk.js';
import type { ModelBox } from '../commands/command.js';
import type { Coverage } from '../coverage.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import { recordOverlayFault, recordQemuFault } from './fault-coverage.js';
import { compressedStreams } from './fault-driver.js';
import { isSnapshotOp, qemuDefaultEvents, qemuOccurrence, type CrashStep, type FaultResult, type FaultStep, type IoErrorStep } from './fault-step.js';
import { qemuEventFor } from './qemu-events.js';
import type { QemuFaultDriver, Recovery } from './qemu-fault-driver.js';
import { compareSnapshots, compareSnapshotsEither, decoded, onTopImage, judgeImage, memory, type FaultMemory } from './run-fault.js';

/** What qemu-io prints at close when its final flush fails: `Failed to flush the L2 table cache: …`. */
const closeFailurePattern = /Failed to flush|Input\/output error|No space left on device/;

/**
 * The whole guest disk after a fault. A disk qemu-img cannot read (say EIO on
 * a compressed cluster whose stream was punched) holds neither old nor new
 * bytes: a violation of the contract, not a harness error.
 */
async function readableGuestDisk(d: QemuFaultDriver, check: 'crash' | 'io-error', what: string): Promise<Uint8Array> {
  try {
    return await d.guestDisk();
  } catch (error) {
    if (error instanceof QemuImgError) throw new PropertyViolation(check, `${what}: the guest disk does not read: ${error.message}`);
    throw error;
  }
}

/** Runs one fault step on QEMU beside the model (which it moves on); returns what the step left for the other checks. */
export async function runQemuFaultStep(m: ModelBox, step: FaultStep, d: QemuFaultDriver, scratch: Map<string, unknown>, coverage: Coverage): Promise<FaultResult> {
  const mem = memory(scratch, m.state.options);
  return onTopImage(m, step, d, coverage, () => (step.kind === 'crash' ? runCrash(m, step, d, mem, coverage) : runIoError(m, step, d, mem, coverage)));
}

async function runCrash(m: ModelBox, step: CrashStep, d: QemuFaultDriver, mem: FaultMemory, coverage: Coverage): Promise<FaultResult> {
  const what = formatStep(step);
  const before = m.state;
  let reached = before;
  let candidates = mem.candidates;
  let inside: { readonly operation: string; readonly event: BlkdebugEvent; readonly held: boolean } | undefined;
  let snapshots: readonly ModelState[] | undefined;
  if (step.during === undefined) {
    await d.kill();
  } else {
    const { op } = step.during;
    const expected = modelStep(before, op);
    const event = step.during.event ?? qemuEventFor(op, before, 0);
    const killed = await d.killDuring(op, event);
    if (killed.reached === 'completed') compareOutcome('outcome', `${what} (the op and a flush ended before the break point)`, expected.outcome, killed.outcome);
    reached = expected.state;
    // held: the op and the ops since the last durable one may be lost; else the flush after the op made it durable
    candidates = killed.reached === 'suspended' ? [...mem.candidates, expected.state] : [expected.state];
    inside = { operation: `inside ${op.kind}`, event, held: killed.reached === 'suspended' };
    // a snapshot op changes the snapshot list: before or after it while held, after it once it completed
    if (isSnapshotOp(op)) snapshots = killed.reached === 'suspended' ? [before, expected.state] : [expected.state];
  }
  const recovery = await d.recover();
  const repaired = recovery.repaired !== undefined;
  if (inside === undefined) recordQemuFault(coverage, 'crash', mem.lastOp, 'sigkill', repaired);
  else recordQemuFault(coverage, 'crash', inside.operation, inside.held ? { event: inside.event, where: 'break' } : 'break not reached', repaired);
  const leakedClusters = await adoptJudged(m, d, mem, { recovery, candidates, mayLeak: true, ...(snapshots === undefined ? {} : { snapshots }) }, 'crash', what);
  mem.lastOp = 'crash';
  return { step, reached, leakedClusters };
}

async function runIoError(m: ModelBox, step: IoErrorStep, d: QemuFaultDriver, mem: FaultMemory, coverage: Coverage): Promise<FaultResult> {
  const what = formatStep(step);
  const before = m.state;
  const expected = modelStep(before, step.op);
  const event = step.event ?? qemuDefaultEvents[step.access];
  const faulted = await d.applyUnderFault(step.op, { event, occurrence: qemuOccurrence(step), errno: step.errno, once: !step.persistent });
  const first = injectedEio(step, expected.outcome, faulted.first);
  const run = { ...faulted, first };
  const failedIo = !run.first.ok && run.first.error === 'io';
  const failedAtClose = closeFailurePattern.test(run.closing);
  // qemu-io's exit status says a command failed though the op succeeded: one of the flushes (they print nothing)
  const flushFailed = run.commandFailed && run.first.ok && run.retried === undefined && !failedAtClose;
  const seen = failedIo ? 'op' : failedAtClose ? 'close' : flushFailed ? 'flush' : undefined;
  recordQemuFault(coverage, 'ioError', step.op.kind, seen === undefined ? 'no failure seen' : { event, where: seen });
  if (seen !== undefined) recordOverlayFault(coverage, 'ioError', backingLayers(before).length);
  if (!failedIo) compareOutcome('io-error', what, expected.outcome, run.first);
  // a compressed write retried over the clusters its first try wrote is refused (QEMU cannot overwrite them): it did not land whole
  const retryRefusedOverLanded = step.op.kind === 'writeCompressed' && run.retried?.ok === false && run.retried.error === 'compressed-overwrite';
  if (run.retried !== undefined && !retryRefusedOverLanded) compareOutcome('io-error', `${what}, retried in the same qemu-io process`, expected.outcome, run.retried);
  const landed = (run.first.ok || run.retried?.ok === true) && expected.outcome.ok;
  // the process that met the error has quit: everything before the op was durable when it opened
  const strict = landed && !failedAtClose;
  const recovery = await d.recover();
  // a snapshot op that met an error may leave stale COPIED flags, as it may have committed (docs/semantics.md, "Faults")
  const snapshotOp = isSnapshotOp(step.op);
  if (snapshotOp && (failedIo || failedAtClose)) mem.copiedStaleAllowed = true;
  // leaks are allowed once an error has fired, and after a snapshot op under a rule
  // (qemu-img answers ok when only qcow2_free_clusters failed, leaking those clusters)
  const mayLeak = seen !== undefined || snapshotOp;
  const candidates = strict ? [expected.state] : [before, expected.state];
  const snapshots = snapshotOp ? (strict ? [expected.state] : [before, expected.state]) : undefined;
  const leakedClusters = await adoptJudged(m, d, mem, { recovery, candidates, mayLeak, ...(snapshots === undefined ? {} : { snapshots }) }, 'io-error', `${what}, after qemu-io quit${failedAtClose ? ` (it printed: ${run.closing.split('\n')[0] ?? ''})` : ''}`);
  if (!strict) {
    // the op may be lost: it runs again in a fresh process
    const again = modelStep(m.state, step.op);
    compareOutcome('io-error', `${what}, retried in a fresh qemu-io process`, again.outcome, await d.apply(step.op));
    m.state = again.state;
    mem.candidates.push(again.state);
  }
  mem.lastOp = `ioError ${step.op.kind}`;
  await compareWholeDisk(d, m.state, 'io-error', `after ${what}`);
  return { step, reached: expected.state, leakedClusters };
}

/**
 * The image after a fault, with no process on it: qemu-img check (after the
 * repair of a dirty image) and the model's checker find at most leaks, the
 * guest disk reads as one of `candidates` per sector, the snapshots are kept;
 * the model adopts the image, which is now durable. A fault that `mayLeak`
 * sets the leaks the image may hold from now on; otherwise it may hold no
 * more than the last fault left.
 * @returns the leaked clusters the fault left: those the checker finds (with
 * counts past the end of the file), and on a dirty image those `qemu-img
 * check -r all` fixed and the clusters its rebuild of the refcount structures
 * added (free clusters in the file now, which the space bound allows).
 */
async function adoptJudged(
  m: ModelBox,
  d: QemuFaultDriver,
  mem: FaultMemory,
  after: {
    readonly recovery: Recovery;
    readonly candidates: FaultMemory['candidates'];
    readonly mayLeak: boolean;
    /** After an error inside a snapshot op: the states whose snapshots the image may hold (before and after it). */
    readonly snapshots?: readonly ModelState[];
  },
  check: 'crash' | 'io-error',
  what: string,
): Promise<number> {
  const { recovery, candidates } = after;
  const verdict = recovery.check.verdict;
  // qemu-img counts stale COPIED flags as corruptions: allowed where the model's checker finds only those (judgeImage)
  const staleOnly = mem.copiedStaleAllowed && verdict === 'corrupt' && recovery.check.corruptions === checkWith(bufferReader(recovery.bytes), new Map()).copiedStale;
  const leaksOk = after.mayLeak || recovery.check.leaks <= mem.leaksAllowed;
  if (verdict !== 'clean' && !(verdict === 'leaks' && leaksOk) && !(staleOnly && leaksOk)) {
    const repair = recovery.repaired === undefined ? '' : ` after check -r all (exit ${recovery.repaired.exitCode})`;
    throw new PropertyViolation(check, `${what}: qemu-img check${repair} says ${verdict} (${recovery.check.corruptions} corruptions, ${recovery.check.leaks} leaks): ${recovery.check.messages.slice(0, 3).join('; ')}`);
  }
  // the guest disk first: an image QEMU left unreadable fails there, as the guest would see it, whatever the checkers say
  const disk = await readableGuestDisk(d, check, what);
  const leaked = judgeImage(recovery.bytes, after.mayLeak ? 'any' : mem.leaksAllowed, check, what, mem.copiedStaleAllowed);
  if (after.mayLeak) mem.leaksAllowed = leaked;
  const disallowed = disallowedAfterFault(candidates, disk);
  if (disallowed !== undefined) throw new PropertyViolation(check, `${what}: ${disallowed}`);
  const image = decoded(recovery.bytes, check, what);
  const adopted = stateFromImage(image, m.state.options, await compressedStreams(image, recovery.bytes), m.state.backing);
  if (after.snapshots === undefined) compareSnapshots(m.state, adopted, what);
  else compareSnapshotsEither(after.snapshots, adopted, check, what);
  m.state = adopted;
  mem.candidates = [adopted];
  if (!after.mayLeak || recovery.repaired === undefined) return leaked;
  return leaked + recovery.repaired.leaksFixed + Math.ceil(recovery.repairGrewBytes / 2 ** m.state.options.clusterBits);
}

/**
 * QEMU 7.2 refuses a compressed write over an allocated cluster with EIO
 * (qcow2_alloc_compressed_cluster_offset), the errno blkdebug injects: the
 * driver reads such an EIO as that refusal. When the model expects the write
 * to succeed, the EIO is the injected one.
 */
function injectedEio(step: IoErrorStep, expected: Outcome, actual: Outcome): Outcome {
  if (step.op.kind !== 'writeCompressed' || step.errno !== 'EIO' || !expected.ok || actual.ok || actual.error !== 'compressed-overwrite') return actual;
  return { ok: false, error: 'io', message: actual.message };
}

function compareOutcome(check: 'outcome' | 'io-error', what: string, expected: Outcome, actual: Outcome): void {
  const same = expected.ok ? actual.ok : !actual.ok && actual.error === expected.error;
  if (same) return;
  const show = (o: Outcome) => (o.ok ? 'ok' : `${o.error} (${o.message})`);
  throw new PropertyViolation(check, `${what}: QEMU answered ${show(actual)}, the model expects ${show(expected)}`);
}
