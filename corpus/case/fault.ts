// What a property failure *is*, independent of who noticed it. The signature
// (identity.ts) says where a failure was seen: the property, the check and the
// last step run. The same QEMU bug is seen in many places: the leak of a
// refused snapshot create is `qemuJudges/qemu-img-check/snapshotCreate`,
// `structure/check-image/snapshotCreate` or `reopen/check-image/reopen`
// depending on the property and on which later step ran into it. The fault
// identity keeps only the kind of fault and the operation that caused it, with
// that operation's outcome, e.g. `leak/snapshotCreate:refcount-overflow`:
// known divergences match on it (cli/commands/gate-divergences.ts), and replay
// calls a failure "reproduced" when it has the case's identity.
import { expectedRefcounts, guestClusterKind, initialState, packingDecidesOverflow, step, type ClusterKind, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import type { Step } from '../../properties/steps.js';
import { isFaultStep } from '../../properties/faults/fault-step.js';
import type { PropertyFailureCase } from './types.js';

/**
 * The kind of fault, from the check that saw it:
 * - `leak`, `corruption`, `check-error`: the model's checker or `qemu-img check` (by its verdict);
 * - `data`: guest bytes differ from the model (a read, the whole-disk read around a reopen, `qemu-img compare`);
 * - `outcome`: an operation succeeded or failed unlike the model (a failed final reopen included);
 * - `structure`, `map`, `space`: the check of that name;
 * - `crash`, `io-error`: the contract after a crash or an I/O error (properties/faults/);
 * - `assertion`, `implementation-error`: the implementation crashed.
 */
export type FaultKind =
  | 'leak'
  | 'corruption'
  | 'check-error'
  | 'data'
  | 'outcome'
  | 'structure'
  | 'map'
  | 'space'
  | 'crash'
  | 'io-error'
  | 'assertion'
  | 'implementation-error';

/** What saw the failure: a check name (`PropertyViolation.check`), or `assertion` / `implementation-error`; and its message. */
export interface ObservedFailure {
  readonly check: string;
  readonly message: string;
}

/** `says leaks (0 corruptions, …)`: the verdict of the model's checker and of the qemu-img check wrapper in a violation message. */
const checkVerdictPattern = /\bsays (clean|leaks|corrupt|cannot-check)\b/;

export function faultKind(f: ObservedFailure): FaultKind {
  switch (f.check) {
    case 'check-image':
    case 'qemu-img-check': {
      const verdict = checkVerdictPattern.exec(f.message)?.[1];
      return verdict === 'leaks' ? 'leak' : verdict === 'corrupt' ? 'corruption' : 'check-error';
    }
    case 'read':
    case 'qemu-img-compare':
      return 'data';
    case 'reopen':
      // the reopen check compares the whole disk, or reports that the final reopen itself failed
      return /the final reopen failed/.test(f.message) ? 'outcome' : 'data';
    case 'outcome':
    case 'structure':
    case 'space':
    case 'crash':
    case 'io-error':
    case 'assertion':
    case 'implementation-error':
      return f.check;
    case 'qemu-img-map':
      return 'map';
    default:
      return 'implementation-error';
  }
}

/** Steps that change nothing a checker counts, so they never cause a fault: reads, flushes, reopens. */
function changesImage(s: Step): boolean {
  return s.kind !== 'read' && s.kind !== 'flush' && s.kind !== 'reopen';
}

/** A step that changes the image: its index in the sequence and `kind:outcome` from the model. */
export interface OperationOutcome {
  readonly index: number;
  readonly outcome: string;
}

/** Every step that changes the image, in order, with the model's outcome (as `causingOperation` names one). */
export function operationOutcomes(options: ImageOptions, steps: readonly Step[]): OperationOutcome[] {
  let state = initialState(options);
  const outcomes: OperationOutcome[] = [];
  steps.forEach((s, index) => {
    if (s.kind === 'read') return;
    if (isFaultStep(s)) {
      // a fault causes what follows it; the model goes on from the op it carries (retried, or run until the power went)
      const carried = s.kind === 'ioError' ? s.op : s.during?.op;
      if (carried !== undefined) state = step(state, carried).state;
      outcomes.push({ index, outcome: `${s.kind}:fault` });
      return;
    }
    const result = step(state, s);
    state = result.state;
    if (changesImage(s)) outcomes.push({ index, outcome: `${s.kind}:${result.outcome.ok ? 'ok' : result.outcome.error}` });
  });
  return outcomes;
}

/**
 * The operation that caused the fault: the last step that changes the image
 * (a shrunk sequence keeps nothing after its cause but what notices it), with
 * the model's outcome for it: `ok` or the error kind it is refused with.
 * `none` when no step changes the image.
 */
export function causingOperation(options: ImageOptions, steps: readonly Step[]): string {
  return operationOutcomes(options, steps).at(-1)?.outcome ?? 'none';
}

/**
 * How many guest clusters the operation that caused the fault spans (its
 * range, for a write, write-zeroes, discard or compressed write; 0 for any
 * other operation, or none): a space fault of one allocator's habit (e.g.
 * QEMU placing a multi-cluster write as one contiguous run) needs a range of
 * several clusters.
 */
export function causingClusterSpan(options: ImageOptions, steps: readonly Step[]): number {
  const index = operationOutcomes(options, steps).at(-1)?.index;
  const s = index === undefined ? undefined : steps[index];
  if (s === undefined || (s.kind !== 'write' && s.kind !== 'writeZeroes' && s.kind !== 'discard' && s.kind !== 'writeCompressed')) return 0;
  const cs = 2 ** options.clusterBits;
  return s.length === 0 ? 0 : Math.floor((s.offset + s.length - 1) / cs) - Math.floor(s.offset / cs) + 1;
}

/**
 * Whether the operation that caused the fault is a snapshot create or revert
 * the model lets succeed but whose outcome the packing of compressed streams
 * on disk decides (model/packed-overflow.ts): the property judged it against
 * the image and may have expected `refcount-overflow`, which the model alone
 * (and so the fault identity) cannot tell.
 */
export function packingMayDecideCause(options: ImageOptions, steps: readonly Step[]): boolean {
  const index = operationOutcomes(options, steps).at(-1)?.index;
  const cause = index === undefined ? undefined : steps[index];
  if (cause === undefined || (cause.kind !== 'snapshotCreate' && cause.kind !== 'snapshotRevert')) return false;
  let state = initialState(options);
  for (const s of steps.slice(0, index)) if (s.kind !== 'read' && !isFaultStep(s)) state = step(state, s).state;
  return packingDecidesOverflow(state, cause) !== undefined;
}

/** The model state right before `steps[index]` runs (a fault step moves it on by the op it carries, as in operationOutcomes). */
function stateBefore(options: ImageOptions, steps: readonly Step[], index: number): ModelState {
  let state = initialState(options);
  for (const s of steps.slice(0, index)) {
    if (s.kind === 'read') continue;
    if (isFaultStep(s)) {
      const carried = s.kind === 'ioError' ? s.op : s.during?.op;
      if (carried !== undefined) state = step(state, carried).state;
      continue;
    }
    state = step(state, s).state;
  }
  return state;
}

/**
 * The operation a crash or I/O error fault hit, and the kinds the guest
 * clusters of its range had before it ran (sorted; none for an op without a
 * range), e.g. `{ kind: 'discard', over: ['compressed'] }`: what a fault of
 * one QEMU code path needs (a discard over compressed clusters punches the
 * stream before the L2 update). The op is the one the fault step carries (an
 * I/O error's op, a crash `during` an op); for a crash between operations,
 * the step right before it, reads aside (a flush or reopen there made the op
 * before it durable, so the crash interrupted nothing). Undefined when the
 * causing operation is no fault step, or nothing ran before the crash.
 */
export interface FaultedOperation {
  readonly kind: string;
  readonly over: readonly ClusterKind[];
}

export function faultedOperation(options: ImageOptions, steps: readonly Step[]): FaultedOperation | undefined {
  const index = operationOutcomes(options, steps).at(-1)?.index;
  const fault = index === undefined ? undefined : steps[index];
  if (index === undefined || fault === undefined || !isFaultStep(fault)) return undefined;
  const carried = fault.kind === 'ioError' ? fault.op : fault.during?.op;
  let opIndex = index;
  let op: Step | undefined = carried;
  if (op === undefined) {
    opIndex = index - 1;
    while (opIndex >= 0 && steps[opIndex]?.kind === 'read') opIndex--;
    op = steps[opIndex];
    if (op !== undefined && isFaultStep(op)) op = op.kind === 'ioError' ? op.op : op.during?.op;
  }
  if (op === undefined) return undefined;
  if (op.kind !== 'write' && op.kind !== 'writeZeroes' && op.kind !== 'discard' && op.kind !== 'writeCompressed') return { kind: op.kind, over: [] };
  const state = stateBefore(options, steps, opIndex);
  const cs = 2 ** options.clusterBits;
  const end = Math.min(op.offset + op.length, state.options.virtualSize);
  const kinds = new Set<ClusterKind>();
  for (let c = Math.floor(op.offset / cs); c * cs < end; c++) kinds.add(guestClusterKind(state, c));
  return { kind: op.kind, over: [...kinds].sort() };
}

/** Guest operations whose writes a crash may lose: any other step (a flush, reopen, snapshot or chain operation, a fault) ends with the image durable. */
function isUnflushedGuestOp(s: Step): boolean {
  return s.kind === 'write' || s.kind === 'writeCompressed' || s.kind === 'writeZeroes' || s.kind === 'discard' || s.kind === 'resize' || s.kind === 'read';
}

/**
 * Whether, since the last durable point (a flush, reopen, snapshot or chain
 * operation, or an earlier fault) before the fault that caused the failure,
 * one operation freed a cluster and a later one allocated one, in the model:
 * a data cluster or compressed stream the first drops its last reference to,
 * a new one the second brings in (a discard, `write -z -u` or shrink, then a
 * write into unallocated clusters). The op a crash interrupted or an I/O
 * error failed counts as the last of them. With lazy refcounts QEMU 7.2
 * hands the freed host cluster to the allocation before the L2 update that
 * freed it is written, so a crash there leaves the freed guest offset naming
 * another offset's data. False when the causing operation is no fault step.
 */
export function freedThenAllocated(options: ImageOptions, steps: readonly Step[]): boolean {
  const index = operationOutcomes(options, steps).at(-1)?.index;
  const fault = index === undefined ? undefined : steps[index];
  if (index === undefined || fault === undefined || !isFaultStep(fault)) return false;
  let start = index;
  for (let prev = steps[start - 1]; prev !== undefined && isUnflushedGuestOp(prev); prev = steps[start - 1]) start--;
  const carried = fault.kind === 'ioError' ? fault.op : fault.during?.op;
  const ops: Op[] = [];
  for (const s of steps.slice(start, index)) if (s.kind !== 'read' && !isFaultStep(s)) ops.push(s);
  if (carried !== undefined) ops.push(carried);
  let state = stateBefore(options, steps, start);
  let freed = false;
  for (const op of ops) {
    const before = expectedRefcounts(state).dataClusters;
    state = step(state, op).state;
    const after = expectedRefcounts(state).dataClusters;
    if (freed && [...after.keys()].some((id) => !before.has(id))) return true;
    freed ||= [...before.keys()].some((id) => !after.has(id));
  }
  return false;
}

/** A crash violation's sector check: which sector and after which fault step vary, the finding does not. */
const noAllowedStatePattern = /guest sector at 0x[0-9a-f]+ reads bytes that no state since the last flush holds there/;

/**
 * What a crash or io-error violation found, without the step it followed,
 * numbers, offsets and file names: `the guest disk does not read:
 * Input/output error` (the distinct errors qemu-img convert printed);
 * `qemu-img check says corrupt: ERROR: counting reference for region
 * exceeding the end of the file … offset # size #` (the checker, its verdict
 * and the distinct kinds of its messages, numbers as `#`); or the message
 * after its `[check] ` with every number as `#`; a sector that reads bytes of
 * no allowed state as `guest sector at # reads bytes that no state since the
 * last flush holds there`, whichever fault step it followed.
 */
export function faultFinding(message: string): string {
  if (noAllowedStatePattern.test(message)) return 'guest sector at # reads bytes that no state since the last flush holds there';
  const unreadable = /the guest disk does not read: ([\s\S]*)$/.exec(message);
  if (unreadable !== null) {
    const reasons = [...(unreadable[1] ?? '').matchAll(/error while reading at byte \d+: ([^\n]+)/g)].map((m) => m[1] ?? '');
    return `the guest disk does not read: ${[...new Set(reasons)].sort().join('; ') || 'no reason given'}`;
  }
  const checked = /(qemu-img check|the checker)(?: after check -r all \(exit \d+\))? (?:says|finds) ([\w-]+)(?: \([^)]*\))?: ([\s\S]*)$/.exec(message);
  if (checked !== null) {
    const kinds = new Set((checked[3] ?? '').split('; ').map(numbersAsHash));
    return `${checked[1] ?? ''} says ${checked[2] ?? ''}: ${[...kinds].sort().join('; ')}`;
  }
  return numbersAsHash(message.replace(/^\[[^\]]*\] /, '').replace(/\/\S+/g, '<file>'));
}

function numbersAsHash(text: string): string {
  return text.replace(/\b(0x[0-9a-f]+|\d+)\b/g, '#');
}

/** A resize that grows the disk from a size inside a cluster: the bytes [oldSize, staleEnd) of that cluster are where QEMU 7.2 exposes stale data. */
export interface UnalignedGrowth {
  /** The resize step's index in the sequence. */
  readonly index: number;
  readonly oldSize: number;
  /** The end of the old last cluster, or the new size when that is less. */
  readonly staleEnd: number;
}

/** Every resize in `steps` that the model lets grow the disk from a size that is not a multiple of the cluster size, in order. */
export function unalignedGrowths(options: ImageOptions, steps: readonly Step[]): UnalignedGrowth[] {
  const cs = 2 ** options.clusterBits;
  const growths: UnalignedGrowth[] = [];
  steps.forEach((s, index) => {
    if (s.kind !== 'resize') return;
    const before = stateBefore(options, steps, index);
    const oldSize = before.options.virtualSize;
    if (oldSize % cs !== 0 && s.size > oldSize && step(before, s).outcome.ok) growths.push({ index, oldSize, staleEnd: Math.min(s.size, Math.ceil(oldSize / cs) * cs) });
  });
  return growths;
}

/** The space check's message: `the file has F clusters (…) but at most B are explained`. */
const spaceExcessPattern = /the file has (\d+) clusters \(\d+ bytes\) but at most (\d+) are explained/;

/** How many clusters a `space` violation found beyond what the model explains, or undefined for another message. */
export function spaceExcessClusters(message: string): number | undefined {
  const m = spaceExcessPattern.exec(message);
  return m === null ? undefined : Number(m[1]) - Number(m[2]);
}

/** `(… N leaks …)`: how many leaked clusters a checker verdict in a message counts, or undefined. */
export function leakedClusters(message: string): number | undefined {
  const m = /\b(\d+) leaks\b/.exec(message);
  return m === null ? undefined : Number(m[1]);
}

/** `fault/operation:outcome`, e.g. `leak/snapshotCreate:refcount-overflow` or `data/resize:ok`. */
export function faultIdentity(f: ObservedFailure, options: ImageOptions, steps: readonly Step[]): string {
  return `${faultKind(f)}/${causingOperation(options, steps)}`;
}

/** A case's identity: the check comes from its signature (`property/check/opKind`), the fault's details from its message. */
export function caseFaultIdentity(c: PropertyFailureCase): string {
  return faultIdentity({ check: c.signature.split('/')[1] ?? '', message: c.message }, c.options, c.ops);
}
