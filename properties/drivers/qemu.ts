// QEMU itself as an implementation under test: one qemu-io session per open
// image for guest I/O, flush and truncate; the session is closed while
// `qemu-img snapshot` runs (it needs the image to itself) and opened again
// afterwards. QEMU's refusals arrive as messages and errnos; they are mapped to
// the model's error kinds here, and anything else is a divergence.
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import {
  compressedWriteBytes, formatOp, writeBytes, type DiscardOp, type ImageOptions, type Op, type OpErrorKind, type Outcome, type WriteCompressedOp, type WriteOp, type WriteZeroesOp,
} from '../../model/index.js';
import {
  QemuImgError,
  QemuIoError,
  createConstraints,
  openQemuIo,
  qemuImgCreate,
  qemuImgInfo,
  qemuImgSnapshot,
  type QemuIoSession,
} from '../../oracle/index.js';
import { implementationError, okOutcome, refused, type ImageDriver } from '../driver.js';
import { ImageFileDriver } from './image-file.js';

type GuestDataOp = WriteOp | WriteCompressedOp | WriteZeroesOp | DiscardOp;

export function isGuestDataOp(op: Op): op is GuestDataOp {
  return op.kind === 'write' || op.kind === 'writeCompressed' || op.kind === 'writeZeroes' || op.kind === 'discard';
}

/** The guest-data ops qemu-io runs as they are (this driver and the handoff's QEMU holder). */
export function applyQemuIoGuestOp(io: QemuIoSession, op: GuestDataOp): Promise<void> {
  switch (op.kind) {
    case 'write':
      return io.write(op.offset, writeBytes(op));
    case 'writeCompressed':
      return io.writeCompressed(op.offset, compressedWriteBytes(op));
    case 'writeZeroes':
      return io.writeZeroes(op.offset, op.length, { unmap: op.unmap });
    case 'discard':
      return io.discard(op.offset, op.length);
  }
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
    case 'writeCompressed':
      // EIO inside the disk: qcow2_alloc_compressed_cluster_offset found a host offset
      if (errno === 'EIO') return op.offset + op.length > virtualSize ? 'out-of-range' : 'compressed-overwrite';
      // qemu-io itself refuses -c with an offset or count that is not whole sectors
      return errno === 'EINVAL' || /is not a sector-aligned value/.test(message) ? 'invalid-argument' : undefined;
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
    return this.io()
      .read(offset, length)
      .catch((error: unknown) => {
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
