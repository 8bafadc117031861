// QEMU under faults: the driver of the crashConsistency property for
// `--impl qemu` (docs/semantics.md, "Faults", QEMU part). Ordinary ops run in a
// qemu-io session on the image, as the QEMU driver runs them. An I/O error
// runs its op in a qemu-io process opened on `blkdebug:RULES:IMAGE` with one
// `inject-error` rule (iotest 026, oracle/qemu-io/blkdebug.ts); a crash is
// SIGKILL of qemu-io (`sigraise 9`), after which the image is repaired as
// iotest 039 repairs a dirty lazy-refcounts image (`qemu-img check -r all`).
// A killed process loses QEMU's caches, not the host's page cache: every
// write qemu-io issued to the file is there.
// Backing chains are laid out and changed as the QEMU driver does
// (chain-files.ts), with qemu-io closed; the faults reach the top image alone.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { bufferReader, decodeImage, formatOp, type ImageOptions, type Op, type Outcome } from '../../model/index.js';
import {
  blkdebugConfig,
  blkdebugFilename,
  createConstraints,
  openQemuIo,
  QemuImgError,
  qemuImgCheck,
  qemuImgCreate,
  qemuImgMap,
  qemuImgReadRaw,
  qemuImgSnapshot,
  QemuIoError,
  type BlkdebugEvent,
  type BlkdebugInjectError,
  type QemuCheckResult,
  type QemuIoSession,
} from '../../oracle/index.js';
import { implementationError, okOutcome, refused, type ImageDriver } from '../driver.js';
import { headerVirtualSize } from '../drivers/image-file.js';
import { QemuSessionDriver, qemuErrorKind } from '../drivers/qemu.js';
import { isSnapshotOp, type FaultableOp, type SnapshotOp } from './fault-step.js';

/** What one op did in a qemu-io process with an injected error. */
export interface FaultedRun {
  /** The op's answer. */
  readonly first: Outcome;
  /** The same op again in the same process, when `first` failed and the error was injected once. */
  readonly retried?: Outcome;
  /** What qemu-io printed while closing (its final flush), '' when nothing failed. */
  readonly closing: string;
  /** Whether qemu-io said (by its exit status) that a command failed: with `first` ok and no retry, a flush that printed nothing. */
  readonly commandFailed: boolean;
}

/** Where a kill inside an op came (QemuFaultDriver.killDuring). */
export type KilledInside = { readonly reached: 'suspended' } | { readonly reached: 'completed'; readonly outcome: Outcome };

/** After a kill or a faulted process: what `qemu-img check` said, and the repair run first on a dirty lazy image. */
export interface Recovery {
  readonly repaired?: QemuCheckResult;
  /** Bytes the file grew by in the repair (check -r all may rebuild the refcount structures past the end, freeing the old ones). */
  readonly repairGrewBytes: number;
  readonly check: QemuCheckResult;
  /** The image file after the repair. */
  readonly bytes: Uint8Array;
}

export interface QemuFaultDriver extends ImageDriver {
  readonly faultTarget: 'qemu';
  /**
   * Closes the ordinary session (a durable point), opens qemu-io on blkdebug
   * with `rule` (cache writeback, so flushes reach `flush_to_disk`), runs `op`;
   * with a once-rule and a failed op, runs it again in the same process; then
   * a flush (twice with a once-rule: a failed flush leaves QEMU's caches dirty
   * for the next); then quits that process.
   */
  applyUnderFault(op: FaultableOp, rule: BlkdebugInjectError): Promise<FaultedRun>;
  /** SIGKILL of qemu-io (`sigraise 9`); a session is started first if none runs. */
  kill(): Promise<void>;
  /**
   * A kill inside `op`: sets a break point at `event` (its first occurrence)
   * in the ordinary session (qemu-io on blkdebug with no rules, holding the
   * metadata of the ops since the last durable one), runs `op` and a flush,
   * and kills the process (SIGKILL from outside) when a request is held
   * there, or after the flush when none was.
   * @returns where the kill came: at the break point, or after the op (with
   * its answer) and the flush.
   */
  killDuring(op: FaultableOp, event: BlkdebugEvent): Promise<KilledInside>;
  /** With no process on the image: `check -r all` when the header is dirty (iotest 039), then `check`. */
  recover(): Promise<Recovery>;
  /** The whole guest disk (qemu-img convert; no process on the image). */
  guestDisk(): Promise<Uint8Array>;
}

export function isQemuFaultDriver(driver: ImageDriver): driver is QemuFaultDriver {
  return 'faultTarget' in driver && driver.faultTarget === 'qemu';
}

/** Whether the image's header has the dirty bit (lazy refcounts left stale); false when it does not decode (the check then says why). */
function headerDirty(bytes: Uint8Array): boolean {
  try {
    return decodeImage(bufferReader(bytes)).header.dirty;
  } catch {
    return false;
  }
}

const driverName = 'qemu (qemu-io session, blkdebug, SIGKILL)';

/** The tag of the break point a kill inside an op waits at. */
const breakTag = 'crash';

/** The empty blkdebug rule file the ordinary session opens with (created with the driver). */
const noRules = 'no-rules.conf';

class BlkdebugQemuDriver extends QemuSessionDriver implements QemuFaultDriver {
  readonly name = driverName;
  readonly faultTarget = 'qemu';
  private readonly rulesPath: string;
  /** The old size of a resize killed inside (killDuring): its stale tail is zeroed after the repair. */
  private tailToZero: number | undefined;
  protected virtualSize: number;

  constructor(
    private readonly tmp: DirectoryResult,
    path: string,
    /** The top image's options (createOverlay replaces them). */
    private options: ImageOptions,
  ) {
    // the ordinary session runs on blkdebug with no rules, so that a break point can be set in it (killDuring)
    super(path, { filename: blkdebugFilename(join(tmp.path, noRules), path), unbufferedOutput: true });
    this.virtualSize = options.virtualSize;
    this.rulesPath = join(tmp.path, 'blkdebug.conf');
  }

  protected lazyRefcountsOn(): boolean {
    return this.options.lazyRefcounts;
  }

  protected overlayCreated(options: ImageOptions): void {
    this.options = options;
  }

  async apply(op: Op): Promise<Outcome> {
    const oldSize = this.virtualSize;
    try {
      await this.applyIn(() => this.qemu.io(), op);
      if (op.kind === 'resize') await this.zeroTailAfterGrowth(oldSize);
      return okOutcome;
    } catch (error) {
      const kind = qemuErrorKind(op, error, this.virtualSize);
      if (kind !== undefined) return refused(kind, error instanceof Error ? error.message : String(error));
      throw implementationError(this.name, formatOp(op), error);
    }
  }

  /**
   * Known divergence (corpus: stale data after shrink then grow), worked
   * around as the handoff's QEMU holder does: QEMU 7.2's qcow2_co_truncate
   * does not clear the bytes past an unaligned old end inside the old last
   * cluster, so they come back on growth. Like the model, zero them with a
   * write when that cluster holds data, in a process with no injected error,
   * and flush, so that a kill between two operations finds them written. The
   * fault sequences draw no extended L2.
   */
  private async zeroTailAfterGrowth(oldSize: number): Promise<void> {
    const clusterSize = 2 ** this.options.clusterBits;
    const tailEnd = Math.min(this.virtualSize, Math.ceil(oldSize / clusterSize) * clusterSize);
    if (this.virtualSize <= oldSize || oldSize % clusterSize === 0 || tailEnd <= oldSize) return;
    const io = await this.qemu.io();
    await io.flush();
    const map = await qemuImgMap(this.path, { forceShare: true });
    if (map.find((e) => e.start <= oldSize - 1 && oldSize - 1 < e.start + e.length)?.data !== true) return;
    await io.write(oldSize, new Uint8Array(tailEnd - oldSize));
    await io.flush();
  }

  async applyUnderFault(op: FaultableOp, rule: BlkdebugInjectError): Promise<FaultedRun> {
    if (isSnapshotOp(op)) return this.snapshotUnderFault(op, rule);
    await this.qemu.close();
    const oldSize = this.virtualSize;
    await writeFile(this.rulesPath, blkdebugConfig(rule));
    let io: QemuIoSession;
    try {
      io = await openQemuIo(blkdebugFilename(this.rulesPath, this.path), { cache: 'writeback' });
    } catch (error) {
      // the drawn events are not reached while an image opens: a failed open is QEMU's own failure
      throw implementationError(this.name, `open on blkdebug (${rule.event}#${rule.occurrence})`, error);
    }
    let first: Outcome;
    let retried: Outcome | undefined;
    let closing: { readonly printed: string; readonly commandFailed: boolean };
    try {
      first = await this.applyFaulted(io, op);
      if (rule.once && !first.ok && first.error === 'io') retried = await this.applyFaulted(io, op);
      // the op's metadata phase: a once-error there fails this flush, and only qemu-io's exit status says so (the
      // close flushes again and prints nothing); a failed flush leaves QEMU's caches dirty for the next one
      await io.flush();
      if (rule.once) await io.flush();
    } finally {
      closing = await io.closeReporting();
      // a resize that failed may have changed the size or not: the header says
      this.virtualSize = await headerVirtualSize(this.path);
    }
    if (op.kind === 'resize') await this.zeroTailAfterGrowth(oldSize);
    return { first, ...(retried === undefined ? {} : { retried }), closing: closing.printed, commandFailed: closing.commandFailed };
  }

  /**
   * A snapshot op under blkdebug: `qemu-img snapshot` on
   * `blkdebug:RULES:IMAGE` (qemu-img 7.2 takes the filename and probes the
   * format under it). One process, so nothing is retried in it; what its
   * closing flush prints is part of its error when the op failed.
   */
  private async snapshotUnderFault(op: SnapshotOp, rule: BlkdebugInjectError): Promise<FaultedRun> {
    await writeFile(this.rulesPath, blkdebugConfig(rule));
    const target = blkdebugFilename(this.rulesPath, this.path);
    const action = op.kind === 'snapshotCreate' ? 'create' : op.kind === 'snapshotRevert' ? 'apply' : 'delete';
    try {
      await this.offline(() => qemuImgSnapshot(target, action, op.name));
      return { first: okOutcome, closing: '', commandFailed: false };
    } catch (error) {
      const kind = qemuErrorKind(op, error, this.virtualSize);
      if (kind !== undefined) return { first: refused(kind, error instanceof Error ? error.message : String(error)), closing: '', commandFailed: false };
      if (error instanceof QemuImgError && (error.errno === 'EIO' || error.errno === 'ENOSPC')) return { first: refused('io', error.message), closing: '', commandFailed: false };
      throw implementationError(this.name, `${formatOp(op)} (blkdebug)`, error);
    }
  }

  /** One op in the blkdebug process: an EIO or ENOSPC that is no refusal the model knows is the injected error, `io`. */
  private async applyFaulted(io: QemuIoSession, op: FaultableOp): Promise<Outcome> {
    try {
      await this.applyIn(() => Promise.resolve(io), op);
      return okOutcome;
    } catch (error) {
      const kind = qemuErrorKind(op, error, this.virtualSize);
      if (kind !== undefined) return refused(kind, error instanceof Error ? error.message : String(error));
      if ((error instanceof QemuIoError || error instanceof QemuImgError) && (error.errno === 'EIO' || error.errno === 'ENOSPC')) return refused('io', error.message);
      throw implementationError(this.name, `${formatOp(op)} (blkdebug)`, error);
    }
  }

  async kill(): Promise<void> {
    const io = await this.qemu.io();
    try {
      await io.run('sigraise 9');
    } catch (error) {
      if (!(error instanceof QemuIoError && /signal SIGKILL/.test(error.message))) throw implementationError(this.name, 'sigraise 9', error);
    }
    await this.qemu.close();
    this.virtualSize = await headerVirtualSize(this.path);
  }

  async killDuring(op: FaultableOp, event: BlkdebugEvent): Promise<KilledInside> {
    if (isSnapshotOp(op)) {
      // qemu-img cannot stop at a break point: the kill comes right after the op, which qemu-img closed durably
      const outcome = await this.apply(op);
      await this.kill();
      return { reached: 'completed', outcome };
    }
    const oldSize = this.virtualSize;
    const io = await this.qemu.io();
    let killed: KilledInside;
    try {
      await io.breakAt(event, breakTag);
      let outcome: Outcome = okOutcome;
      const reached = await io.untilSuspended(breakTag, async () => {
        outcome = await this.applyFaulted(io, op);
        await io.flush();
      });
      killed = reached === 'suspended' ? { reached } : { reached, outcome };
    } catch (error) {
      await io.kill();
      await this.qemu.close();
      throw implementationError(this.name, `${formatOp(op)} (break ${event})`, error);
    }
    await io.kill();
    await this.qemu.close();
    // a resize held part-way may have changed the size or not: the header says
    this.virtualSize = await headerVirtualSize(this.path);
    // the known stale-tail divergence, worked around as in apply once the image is repaired (recover): opening a
    // dirty lazy image in qemu-io now would repair it there, before the judges see what the kill left
    if (op.kind === 'resize') this.tailToZero = oldSize;
    return killed;
  }

  async recover(): Promise<Recovery> {
    await this.qemu.close();
    const killed = new Uint8Array(await readFile(this.path));
    const repaired = headerDirty(killed) ? await qemuImgCheck(this.path, { repair: 'all' }) : undefined;
    if (this.tailToZero !== undefined) {
      this.virtualSize = await headerVirtualSize(this.path);
      await this.zeroTailAfterGrowth(this.tailToZero);
      this.tailToZero = undefined;
      await this.qemu.close();
    }
    const check = await qemuImgCheck(this.path);
    this.virtualSize = await headerVirtualSize(this.path);
    const bytes = new Uint8Array(await readFile(this.path));
    return { ...(repaired === undefined ? {} : { repaired }), repairGrewBytes: Math.max(0, bytes.length - killed.length), check, bytes };
  }

  async guestDisk(): Promise<Uint8Array> {
    await this.qemu.close();
    return qemuImgReadRaw(this.path);
  }

  protected async settle(): Promise<void> {
    await this.settleSession();
  }

  async close(): Promise<void> {
    try {
      await this.qemu.close();
    } finally {
      await this.tmp.cleanup();
    }
  }
}

/** A fresh image made by `qemu-img create`, for the crashConsistency property against QEMU. */
export async function createQemuFaultDriver(options: ImageOptions): Promise<QemuFaultDriver> {
  const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-qfault-' });
  const path = join(tmp.path, 'image.qcow2');
  try {
    await qemuImgCreate(path, createConstraints(options));
    await writeFile(join(tmp.path, noRules), '');
  } catch (error) {
    await tmp.cleanup();
    throw error;
  }
  return new BlkdebugQemuDriver(tmp, path, options);
}
