// QEMU itself as an implementation under test: one qemu-io session per open
// image for guest I/O, flush and truncate; the session is closed while
// `qemu-img snapshot` runs (it needs the image to itself) and opened again
// afterwards. QEMU's refusals arrive as messages and errnos; they are mapped to
// the model's error kinds here, and anything else is a divergence.
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import {
  formatOp, writeBytes, type DiscardOp, type ImageOptions, type Op, type OpErrorKind, type Outcome, type WriteOp, type WriteZeroesOp,
} from '../../model/index.js';
import {
  QemuImgError,
  QemuIoError,
  QemuOutputError,
  createConstraints,
  openQemuIo,
  qemuImgCreate,
  qemuImgInfo,
  qemuImgReadRaw,
  qemuImgSnapshot,
  type QemuIoSession,
} from '../../oracle/index.js';
import { implementationError, okOutcome, refused, type ImageDriver } from '../driver.js';
import { ImageFileDriver } from './image-file.js';

type GuestDataOp = WriteOp | WriteZeroesOp | DiscardOp;

export function isGuestDataOp(op: Op): op is GuestDataOp {
  return op.kind === 'write' || op.kind === 'writeZeroes' || op.kind === 'discard';
}

/** The guest-data ops qemu-io runs as they are (this driver and the handoff's QEMU holder). */
export function applyQemuIoGuestOp(io: QemuIoSession, op: GuestDataOp): Promise<void> {
  switch (op.kind) {
    case 'write':
      return io.write(op.offset, writeBytes(op));
    case 'writeZeroes':
      return io.writeZeroes(op.offset, op.length, { unmap: op.unmap });
    case 'discard':
      return io.discard(op.offset, op.length);
  }
}

/**
 * Guest reads up to this many bytes go through qemu-io's hexdump (`read -v`,
 * about 5 text bytes per byte: 64 KiB take about 20 ms here); longer ones, such
 * as the whole-disk reads at the end of a sequence, through `qemu-img convert`,
 * whose cost hardly depends on the length (about 30 ms for 8 MiB, against 1.4 s
 * as a hexdump).
 */
export const hexdumpReadBytesMax = 64 * 1024;

/**
 * The guest bytes [offset, offset + length) of the image at `path`, which the
 * session `io` holds. Short reads ask the session itself. Long reads flush the
 * session and read the whole disk with `qemu-img convert -U -O raw`, which goes
 * through the same qcow2 driver. qemu-io runs in writethrough mode (no `-t`), so
 * a completed command is already on disk; the flush makes the read independent
 * of that. A flush writes all guest data and L1/L2 tables in every mode (with
 * lazy refcounts only the refcounts lag, and reading does not use them).
 */
export async function readQemuGuest(io: QemuIoSession, path: string, offset: number, length: number): Promise<Uint8Array> {
  if (length <= hexdumpReadBytesMax) return io.read(offset, length);
  await io.flush();
  const disk = await qemuImgReadRaw(path, { forceShare: true });
  if (offset + length > disk.length) {
    throw new QemuOutputError('qemu-img', `convert -U -O raw ${path}`, `${disk.length} guest bytes, the read needs ${offset + length}`, '');
  }
  return disk.subarray(offset, offset + length);
}

/** The model's error kind for a QEMU failure of `op`, or undefined when it is not a refusal the model knows. */
export function qemuErrorKind(op: Op, error: unknown, virtualSize: number): OpErrorKind | undefined {
  const message = error instanceof Error ? error.message : '';
  const errno = error instanceof QemuIoError || error instanceof QemuImgError ? error.errno : undefined;
  switch (op.kind) {
    case 'write':
    case 'writeZeroes':
    case 'discard':
      // qemu-io: "write failed: Input/output error" for a request past the end
      return errno === 'EIO' && op.offset + op.length > virtualSize ? 'out-of-range' : undefined;
    case 'resize':
      if (/multiple of 512/.test(message)) return 'invalid-argument';
      if (/Can't resize a v2 image which has snapshots/.test(message)) return 'unsupported';
      return undefined;
    case 'snapshotRevert':
    case 'snapshotDelete':
      if (/snapshot not found|No such file or directory/.test(message)) return 'unknown-snapshot';
      return op.kind === 'snapshotRevert' && errno === 'EINVAL' ? 'refcount-overflow' : undefined;
    case 'snapshotCreate':
      // qcow2_update_snapshot_refcount fails with -EINVAL only when a refcount would overflow
      return errno === 'EINVAL' ? 'refcount-overflow' : undefined;
    case 'flush':
    case 'reopen':
      return undefined;
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

class QemuDriver extends ImageFileDriver implements ImageDriver {
  readonly name = 'qemu (qemu-io session + qemu-img snapshot)';
  private session: QemuIoSession | undefined;

  constructor(
    private readonly tmp: DirectoryResult,
    protected readonly path: string,
    private virtualSize: number,
    private readonly lazyRefcounts: boolean,
  ) {
    super();
  }

  async open(): Promise<void> {
    this.session = await openQemuIo(this.path);
  }

  private io(): QemuIoSession {
    if (this.session === undefined) throw new Error('qemu driver: no open qemu-io session');
    return this.session;
  }

  async apply(op: Op): Promise<Outcome> {
    try {
      await this.applyUnchecked(op);
      return okOutcome;
    } catch (error) {
      // a failed qemu-img snapshot leaves the session closed: reopen before answering
      if (this.session === undefined) await this.open();
      const kind = qemuErrorKind(op, error, this.virtualSize);
      if (kind !== undefined) return refused(kind, error instanceof Error ? error.message : String(error));
      throw implementationError(this.name, formatOp(op), error);
    }
  }

  private async applyUnchecked(op: Op): Promise<void> {
    if (isGuestDataOp(op)) return applyQemuIoGuestOp(this.io(), op);
    switch (op.kind) {
      case 'resize':
        await this.io().truncate(op.size);
        this.virtualSize = op.size;
        return;
      case 'snapshotCreate':
        return this.offline(() => qemuImgSnapshot(this.path, 'create', op.name));
      case 'snapshotRevert':
        return this.offline(() => qemuImgSnapshot(this.path, 'apply', op.name));
      case 'snapshotDelete':
        return this.offline(() => qemuImgSnapshot(this.path, 'delete', op.name));
      case 'flush':
        return this.io().flush();
      case 'reopen':
        return this.offline(() => Promise.resolve());
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  /** Runs `task` with the session closed, then reopens it and re-reads the size (revert may change it). */
  private async offline(task: () => Promise<void>): Promise<void> {
    await this.io().close();
    this.session = undefined;
    await task();
    this.virtualSize = (await qemuImgInfo(this.path)).virtualSize;
    await this.open();
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return readQemuGuest(this.io(), this.path, offset, length).catch((error: unknown) => {
      throw implementationError(this.name, `read 0x${offset.toString(16)} 0x${length.toString(16)}`, error);
    });
  }

  /**
   * With lazy refcounts QEMU 7.2 leaves the refcount blocks stale on flush (the
   * dirty bit covers them) and brings them up to date only on close, so the
   * bytes are taken from a cleanly closed image; otherwise a flush suffices.
   */
  protected async settle(): Promise<void> {
    if (this.lazyRefcounts) await this.offline(() => Promise.resolve());
    else await this.io().flush();
  }

  async close(): Promise<void> {
    try {
      await this.session?.close();
      this.session = undefined;
    } finally {
      await this.tmp.cleanup();
    }
  }
}

/** A fresh image made by `qemu-img create`, opened in a qemu-io session. */
export async function createQemuDriver(options: ImageOptions): Promise<ImageDriver> {
  const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-qemu-' });
  const path = join(tmp.path, 'image.qcow2');
  const driver = new QemuDriver(tmp, path, options.virtualSize, options.lazyRefcounts);
  try {
    await qemuImgCreate(path, createConstraints(options));
    await driver.open();
  } catch (error) {
    await tmp.cleanup();
    throw error;
  }
  return driver;
}
