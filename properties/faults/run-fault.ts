// Running a fault step (docs/semantics.md, "Faults: crashes and I/O errors"),
// and the faults check that keeps what a crash may go back to.
//
// A crash: the image must open, pass the checker with at most leaks (judged
// after the open's repair when lazy refcounts left it dirty), read in every
// sector as some state since the last durable operation, and keep its snapshot
// list; the model then adopts the image (model/crash.ts: stateFromImage).
// An I/O error: the op meets it and fails with `io` (or never meets it and runs
// as the model says); until it is retried, each sector reads old or new and the
// flushed image is corrupt-free; the retry succeeds and leaves the model's state.
// On a backing chain the faults reach the top image alone: every backing file
// reads byte for byte as before the fault, and its checker finds no corruption.
import {
  backingLayers,
  bufferReader,
  checkWith,
  countedPastEnd,
  DecodeError,
  decodeImage,
  disallowedAfterFault,
  initialState,
  read,
  revertResized,
  stateFromImage,
  step as modelStep,
  formatOp,
  type DecodedImage,
  type ModelState,
  type Op,
  type Outcome,
} from '../../model/index.js';
import type { Check } from '../checks/check.js';
import { compareWholeDisk } from '../checks/whole-disk.js';
import type { ModelBox } from '../commands/command.js';
import { recordFault, recordOverlayFault, recordUnreachedFault } from './fault-coverage.js';
import type { Coverage } from '../coverage.js';
import type { ImageDriver } from '../driver.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import { compressedStreams, CrashOpenError, isFaultDriver, type FaultDriver } from './fault-driver.js';
import { isSnapshotOp, type CrashStep, type FaultableOp, type FaultResult, type FaultStep, type IoErrorStep } from './fault-step.js';

/** Crash states judged by the checker at each crash: the adopted one (opened and read) and the others. */
export const crashStatesJudged = 4;

/** What the faults check keeps across one sequence. */
export interface FaultMemory {
  /** The model after the last durable operation and after each one since, oldest first. */
  candidates: ModelState[];
  /**
   * Leaked clusters the image may hold: those the checker found right after
   * the last fault (0 before any). No operation after it may leak more.
   */
  leaksAllowed: number;
  /** The kind of the last operation (what a crash interrupts, for the coverage). */
  lastOp: string;
  /**
   * A fault interrupted a snapshot operation in this sequence: stale COPIED
   * flags (on clusters one reference reaches) are allowed from then on, as
   * QEMU leaves them (docs/semantics.md, "Faults").
   */
  copiedStaleAllowed: boolean;
}

/** The faults check's memory of this sequence (created at its first use). */
export function memory(scratch: Map<string, unknown>, options: ModelState['options']): FaultMemory {
  let m = scratch.get('faults') as FaultMemory | undefined;
  if (m === undefined) {
    m = { candidates: [initialState(options)], leaksAllowed: 0, lastOp: 'start', copiedStaleAllowed: false };
    scratch.set('faults', m);
  }
  return m;
}

/**
 * Operations after which everything is durable: the engine flushes at their
 * end (snapshot ops before and after; the chain ops, which QEMU runs in
 * qemu-img with no qemu-io open).
 */
function makesDurable(op: Op, outcome: Outcome): boolean {
  if (!outcome.ok) return false;
  switch (op.kind) {
    case 'flush':
    case 'reopen':
    case 'snapshotCreate':
    case 'snapshotRevert':
    case 'snapshotDelete':
    case 'createOverlay':
    case 'rebase':
    case 'commit':
      return true;
    default:
      return false;
  }
}

export const faultsCheck: Check = {
  name: 'faults',
  async afterOp(env, op, outcome) {
    const m = memory(env.scratch, env.options);
    m.lastOp = op.kind;
    if (makesDurable(op, outcome)) m.candidates = [env.state];
    else m.candidates.push(env.state);
  },
  async atEnd(env) {
    const m = memory(env.scratch, env.options);
    judgeImage((await env.image()).bytes, m.leaksAllowed, 'check-image', 'at the end of the sequence', m.copiedStaleAllowed);
    judgeLayers(env.driver.backingChain?.() ?? [], (await env.driver.backingFileBytes?.()) ?? [], 'check-image', 'at the end of the sequence');
    await compareWholeDisk(env.driver, env.state, 'read', 'at the end of the sequence');
  },
};

/** The backing files as a fault finds them, nearest first (none without a chain). */
export interface BackingFiles {
  readonly names: readonly string[];
  readonly bytes: readonly Uint8Array[];
}

/** The backing files before a fault, to be judged after it (judgeBackingAfterFault). */
export async function backingBeforeFault(driver: ImageDriver): Promise<BackingFiles> {
  return { names: (driver.backingChain?.() ?? []).map((f) => f.name), bytes: (await driver.backingFileBytes?.()) ?? [] };
}

/**
 * After a fault on the top image: the chain is the same files, each reads
 * byte for byte as before (the guest ops under fault never write a backing
 * file), and each qcow2 one has no corruption.
 */
export async function judgeBackingAfterFault(driver: ImageDriver, before: BackingFiles, check: 'crash' | 'io-error', what: string): Promise<void> {
  const chain = driver.backingChain?.() ?? [];
  const names = chain.map((f) => f.name);
  if (names.join('/') !== before.names.join('/')) throw new PropertyViolation(check, `${what}: the backing chain is [${names.join(', ')}], it was [${before.names.join(', ')}]`);
  const after = (await driver.backingFileBytes?.()) ?? [];
  for (const [i, name] of names.entries()) {
    const was = before.bytes[i];
    const now = after[i];
    if (was === undefined || now === undefined || Buffer.compare(was, now) !== 0) throw new PropertyViolation(check, `${what}: the backing file ${name} changed under a fault on the image above it`);
  }
  judgeLayers(chain, after, check, what);
}

/** Each qcow2 backing file passes the checker with at most leaks (a layer keeps the leaks a fault left in it while it was the top image). */
function judgeLayers(chain: readonly { readonly name: string; readonly format: 'qcow2' | 'raw' }[], bytes: readonly Uint8Array[], check: 'crash' | 'io-error' | 'check-image', when: string): void {
  for (const [i, file] of chain.entries()) {
    const layer = bytes[i];
    if (file.format === 'qcow2' && layer !== undefined) judgeImage(layer, 'any', check, `${when}, backing file ${file.name}`);
  }
}

/**
 * The checker on an image: no corruption, and no more leaked clusters than
 * `leaksAllowed` ('any' right at a fault, which may leak what it interrupted).
 * Counts past the end of the file are leaks to come (a crash can leave the
 * count of a cluster the file never reached; the file grows over it later).
 * With `copiedStale`, OFLAG_COPIED errors on clusters one reference reaches
 * are allowed too (a fault inside a snapshot op; CheckDetails.copiedStale).
 * @returns the leaked clusters: the checker's and those past the end.
 */
export function judgeImage(bytes: Uint8Array, leaksAllowed: number | 'any', check: 'crash' | 'io-error' | 'check-image', when: string, copiedStale = false): number {
  const details = checkWith(bufferReader(bytes), new Map());
  const report = details.report;
  const onlyStale = copiedStale && report.verdict === 'corrupt' && report.checkErrors === 0 && report.corruptions === details.copiedStale;
  if (report.verdict !== 'clean' && report.verdict !== 'leaks' && !onlyStale) {
    throw new PropertyViolation(check, `${when}: the checker finds ${report.verdict}: ${report.messages.slice(0, 3).join('; ')}`);
  }
  const pastEnd = countedPastEnd(decoded(bytes, check, when));
  const leaks = report.leaks + pastEnd;
  if (leaksAllowed === 'any' || leaks <= leaksAllowed) return leaks;
  throw new PropertyViolation(
    check,
    `${when}: ${report.leaks} leaked clusters and ${pastEnd} counted past the end of the file, more than the ${leaksAllowed} the last fault left: ${report.messages.slice(0, 3).join('; ')}`,
  );
}

/** The image decoded; a PropertyViolation when it does not decode (say an L2 entry names a compressed stream past the end of the file). */
export function decoded(bytes: Uint8Array, check: 'crash' | 'io-error' | 'check-image', when: string): DecodedImage {
  try {
    return decodeImage(bufferReader(bytes));
  } catch (error) {
    if (error instanceof DecodeError) throw new PropertyViolation(check, `${when}: the image does not decode: ${error.message}`);
    throw error;
  }
}

function faultDriver(driver: ImageDriver): FaultDriver {
  if (!isFaultDriver(driver)) throw new PropertyViolation('crash', `${driver.name} cannot inject faults (only the crashConsistency property draws them)`);
  return driver;
}

/** The whole guest disk as the engine reads it now (its own virtual size). */
async function guestView(driver: FaultDriver): Promise<Uint8Array> {
  const size = driver.virtualSize();
  return size === 0 ? new Uint8Array() : driver.read(0, size);
}

/** Runs one fault step beside the model (which it moves on); returns what the step left for the other checks. */
export async function runFaultStep(m: ModelBox, step: FaultStep, driver: ImageDriver, scratch: Map<string, unknown>, coverage: Coverage): Promise<FaultResult> {
  const d = faultDriver(driver);
  const mem = memory(scratch, m.state.options);
  return onTopImage(m, step, d, coverage, () => (step.kind === 'crash' ? runCrash(m, step, d, mem, coverage) : runIoError(m, step, d, mem, coverage)));
}

/**
 * Runs a fault step (`run`) that reaches the top image alone: counts a crash
 * on an overlay, and judges the backing files the same before and after it
 * (backingBeforeFault, judgeBackingAfterFault). For our engine and for QEMU.
 */
export async function onTopImage(m: ModelBox, step: FaultStep, d: ImageDriver, coverage: Coverage, run: () => Promise<FaultResult>): Promise<FaultResult> {
  const backing = await backingBeforeFault(d);
  if (step.kind === 'crash') recordOverlayFault(coverage, 'crash', backingLayers(m.state).length);
  const result = await run();
  await judgeBackingAfterFault(d, backing, step.kind === 'crash' ? 'crash' : 'io-error', formatStep(step));
  return result;
}

async function runCrash(m: ModelBox, step: CrashStep, d: FaultDriver, mem: FaultMemory, coverage: Coverage): Promise<FaultResult> {
  const what = formatStep(step);
  const before = m.state;
  const after = step.during === undefined ? undefined : await layoutAfter(d, step.during.op);
  if (step.during !== undefined && !(await runUntilPowerLoss(m, step.during, d, mem))) {
    // the op finished before its Nth access: the crash comes after it
    recordFault(coverage, 'crash', step.during.op.kind, d.pendingWriteOffsets(), d.fileBytes());
  } else {
    recordFault(coverage, 'crash', step.during === undefined ? mem.lastOp : `inside ${step.during.op.kind}`, d.pendingWriteOffsets(), d.fileBytes(), after);
  }
  // Other states the disk could hold at the same point, judged by the checker only (opening each would cost more).
  if (step.during !== undefined && isSnapshotOp(step.during.op) && d.powerLost()) mem.copiedStaleAllowed = true;
  const stale = mem.copiedStaleAllowed;
  for (let k = 1; k < crashStatesJudged; k++) {
    const other = await d.crashState((step.seed + k * 0x9e3779b9) | 0);
    if (!decodeImage(bufferReader(other)).header.dirty) judgeImage(other, 'any', 'crash', `${what}, crash state ${k} of ${crashStatesJudged} as the disk holds it`, stale);
  }
  let crashed: Uint8Array;
  try {
    crashed = await d.crash(step.seed);
  } catch (error) {
    if (error instanceof CrashOpenError) throw new PropertyViolation('crash', `${what}: the crash state does not open: ${error.message}`, { cause: error });
    throw error;
  }
  // A dirty lazy-refcounts image has stale counts by design: it is judged after the open's repair.
  if (!decodeImage(bufferReader(crashed)).header.dirty) judgeImage(crashed, 'any', 'crash', `${what}, the crash state as the disk holds it`, stale);
  const disallowed = disallowedAfterFault(mem.candidates, await guestView(d));
  if (disallowed !== undefined) throw new PropertyViolation('crash', `${what}: ${disallowed}`);
  const reopened = await d.imageBytes();
  const leakedClusters = judgeImage(reopened, 'any', 'crash', `${what}, after the reopen`, stale);
  const reached = m.state;
  const decoded = decodeImage(bufferReader(reopened));
  const adopted = stateFromImage(decoded, m.state.options, await compressedStreams(decoded, reopened), m.state.backing);
  // inside a snapshot op the table is the one before it or the one after, whole
  if (step.during !== undefined && isSnapshotOp(step.during.op)) compareSnapshotsEither([before, m.state], adopted, 'crash', what);
  else compareSnapshots(m.state, adopted, what);
  m.state = adopted;
  mem.candidates = [adopted];
  mem.leaksAllowed = leakedClusters;
  mem.lastOp = 'crash';
  return { step, reached, leakedClusters };
}

/**
 * Runs the op with the power going at its Nth write or flush. True when it
 * did (the op may have landed in part: its result joins the candidates); false
 * when the op finished first (then it is checked as any op).
 */
async function runUntilPowerLoss(m: ModelBox, during: NonNullable<CrashStep['during']>, d: FaultDriver, mem: FaultMemory): Promise<boolean> {
  const expected = modelStep(m.state, during.op);
  const passedThrough = passesThrough(m.state, during.op);
  d.losePowerAt(during.access, during.nth);
  const actual = await d.apply(during.op);
  m.state = expected.state;
  if (d.powerLost() && passedThrough !== undefined) mem.candidates.push(passedThrough);
  mem.candidates.push(expected.state);
  if (d.powerLost()) return true;
  const same = expected.outcome.ok ? actual.ok : !actual.ok && actual.error === expected.outcome.error;
  if (!same) throw new PropertyViolation('outcome', `${formatOp(during.op)} (the power held): the implementation answered ${actual.ok ? 'ok' : actual.error}, the model expects ${expected.outcome.ok ? 'ok' : expected.outcome.error}`);
  return false;
}

/** A durable state an op passes through on its way (a revert's resize), which a fault inside it may leave. */
function passesThrough(state: ModelState, op: FaultableOp): ModelState | undefined {
  return op.kind === 'snapshotRevert' ? revertResized(state, op) : undefined;
}

/** After a fault inside a snapshot op: the snapshots are those of one of `expected` (before or after the op), whole. */
export function compareSnapshotsEither(expected: readonly ModelState[], found: ModelState, check: 'crash' | 'io-error', what: string): void {
  const violations: PropertyViolation[] = [];
  for (const e of expected) {
    try {
      compareSnapshots(e, found, what);
      return;
    } catch (error) {
      if (!(error instanceof PropertyViolation)) throw error;
      violations.push(error);
    }
  }
  throw new PropertyViolation(check, `${what}: the snapshots are neither those before the op nor those after: ${violations.map((v) => v.message).join(' / ')}`);
}

/** Snapshots are durable before a crash: same IDs, names, sizes and guest bytes. */
export function compareSnapshots(expected: ModelState, found: ModelState, what: string): void {
  const show = (s: ModelState) => s.snapshots.map((x) => `${x.id}:${x.name}:${x.diskSize}`).join(', ');
  if (show(expected) !== show(found)) throw new PropertyViolation('crash', `${what}: snapshots [${show(found)}], expected [${show(expected)}]`);
  for (const [i, snap] of expected.snapshots.entries()) {
    const other = found.snapshots[i];
    if (other === undefined) continue;
    const view = (s: ModelState, l1: ModelState['active'], size: number) => read({ ...s, active: l1, options: { ...s.options, virtualSize: size } }, 0, size);
    const a = view(expected, snap.l1, snap.diskSize);
    const b = view(found, other.l1, other.diskSize);
    if (Buffer.compare(a, b) !== 0) throw new PropertyViolation('crash', `${what}: snapshot ${snap.id} (${snap.name}) no longer reads as it was taken`);
  }
}

/**
 * For a snapshot op, the image file once it completes (FaultDriver.imageAfter,
 * which flushes first: the fault then falls among the op's own accesses), so
 * the coverage names the table and L1 copy it writes before anything refers
 * to them; undefined for the other ops.
 */
function layoutAfter(d: FaultDriver, op: FaultableOp): Promise<Uint8Array | undefined> {
  return isSnapshotOp(op) ? d.imageAfter(op) : Promise.resolve(undefined);
}

async function runIoError(m: ModelBox, step: IoErrorStep, d: FaultDriver, mem: FaultMemory, coverage: Coverage): Promise<FaultResult> {
  const what = formatStep(step);
  const before = m.state;
  const expected = modelStep(before, step.op);
  const after = await layoutAfter(d, step.op);
  d.arm({ access: step.access, nth: step.nth, errno: step.errno, persistent: step.persistent });
  let actual: Outcome;
  let fired: number;
  try {
    actual = await d.apply(step.op);
  } finally {
    fired = d.disarm();
  }
  if (fired === 0) {
    // never met: the op ran as any other
    recordUnreachedFault(coverage, step.op.kind);
    compareFaultless(step, expected.outcome, actual);
  } else {
    const failed = d.firstFailure();
    recordFault(coverage, 'ioError', step.op.kind, failed === undefined || failed === 'flush' ? 'flush' : [failed], d.fileBytes(), after);
    recordOverlayFault(coverage, 'ioError', backingLayers(before).length);
    if (actual.ok || actual.error !== 'io') {
      throw new PropertyViolation('io-error', `${what}: the injected error failed ${fired} access(es) but the op answered ${actual.ok ? 'ok' : `${actual.error} (${actual.message})`}, not io`);
    }
    if (isSnapshotOp(step.op)) return adoptAfterSnapshotError(m, step, d, mem, expected.state);
    const disallowed = disallowedAfterFault([before, expected.state], await guestView(d));
    if (disallowed !== undefined) throw new PropertyViolation('io-error', `${what}, before the retry: ${disallowed}`);
    const flushed = await d.imageBytes();
    mem.leaksAllowed = judgeImage(flushed, 'any', 'io-error', `${what}, before the retry`, mem.copiedStaleAllowed);
    if (step.op.kind === 'writeCompressed') return adoptAfterCompressedError(m, step, d, mem, expected.state, flushed);
    // the flush above made the half-done op durable: a crash from here sees old or new
    mem.candidates = [before];
    const retried = await d.apply(step.op);
    compareFaultless(step, expected.outcome, retried);
  }
  m.state = expected.state;
  mem.candidates.push(expected.state);
  mem.lastOp = `ioError ${step.op.kind}`;
  await compareWholeDisk(d, m.state, 'io-error', `after ${what}`);
  return { step, reached: m.state, leakedClusters: mem.leaksAllowed };
}

/**
 * A compressed write that met an error is not retried: a compressed write
 * never overwrites an allocated cluster, so once some of its clusters landed a
 * retry is refused (compressed-overwrite), by QEMU as by the engine. The model
 * adopts the flushed image instead (its guest view was judged old or new per
 * sector before), as after a crash.
 */
async function adoptAfterCompressedError(m: ModelBox, step: IoErrorStep, d: FaultDriver, mem: FaultMemory, reached: ModelState, flushed: Uint8Array): Promise<FaultResult> {
  const decoded = decodeImage(bufferReader(flushed));
  m.state = stateFromImage(decoded, m.state.options, await compressedStreams(decoded, flushed), m.state.backing);
  mem.candidates = [m.state];
  mem.lastOp = `ioError ${step.op.kind}`;
  await compareWholeDisk(d, m.state, 'io-error', `after ${formatStep(step)}`);
  return { step, reached, leakedClusters: mem.leaksAllowed };
}

/**
 * A snapshot op that met an error is not retried blindly: it may have
 * committed (the table names the new snapshot, or no longer names the deleted
 * one) before a later write failed, as QEMU's may. The image (the engine has
 * read its metadata back from the file) must hold the snapshots before or
 * after the op, whole, read as before or after it per sector, and check at
 * most leaks and stale COPIED flags; the model adopts it and the op runs
 * again, answering as the model says from there (a committed delete: unknown
 * snapshot).
 */
async function adoptAfterSnapshotError(m: ModelBox, step: IoErrorStep, d: FaultDriver, mem: FaultMemory, reached: ModelState): Promise<FaultResult> {
  const what = formatStep(step);
  const before = m.state;
  mem.copiedStaleAllowed = true;
  const flushed = await d.imageBytes();
  mem.leaksAllowed = judgeImage(flushed, 'any', 'io-error', `${what}, before the retry`, true);
  const through = passesThrough(before, step.op);
  const disallowed = disallowedAfterFault(through === undefined ? [before, reached] : [before, through, reached], await guestView(d));
  if (disallowed !== undefined) throw new PropertyViolation('io-error', `${what}, before the retry: ${disallowed}`);
  const decoded = decodeImage(bufferReader(flushed));
  const adopted = stateFromImage(decoded, before.options, await compressedStreams(decoded, flushed), before.backing);
  compareSnapshotsEither([before, reached], adopted, 'io-error', `${what}, before the retry`);
  const again = modelStep(adopted, step.op);
  compareFaultless(step, again.outcome, await d.apply(step.op));
  m.state = again.state;
  mem.candidates = [again.state];
  mem.lastOp = `ioError ${step.op.kind}`;
  await compareWholeDisk(d, m.state, 'io-error', `after ${what}`);
  return { step, reached, leakedClusters: mem.leaksAllowed };
}

function compareFaultless(step: IoErrorStep, expected: Outcome, actual: Outcome): void {
  const same = expected.ok ? actual.ok : !actual.ok && actual.error === expected.error;
  if (same) return;
  const show = (o: Outcome) => (o.ok ? 'ok' : `${o.error} (${o.message})`);
  throw new PropertyViolation('io-error', `${formatStep(step)}: with the fault cleared the op answered ${show(actual)}, the model expects ${show(expected)}`);
}
