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
  qemuImgCommit,
  qemuImgCreate,
  qemuImgRebase,
  qemuImgWriteRawInFull,
  qemuImgReadRaw,
  qemuImgSnapshot,
  type QemuIoCacheMode,
  type QemuIoSession,
} from '../../oracle/index.js';
import { GuestDiskShortError, implementationError, okOutcome, refused, type ImageDriver } from '../driver.js';
import { backingAt, chainAfter, copyBackingFiles, moveToBacking, noChain, overlayBackingFile, readBackingFiles, type ChainFile, type ChainFiles } from './chain-files.js';
import { headerVirtualSize, ImageFileDriver } from './image-file.js';

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
 * through the same qcow2 driver. The sessions cache metadata (`qemuIoCache`),
 * so the flush is what puts the L1/L2 tables the read needs into the file; it
 * does so in every mode (with lazy refcounts only the refcounts lag, and
 * reading does not use them). The flush is an extra step QEMU sees; guest data
 * never depends on it.
 */
export async function readQemuGuest(io: QemuIoSession, path: string, offset: number, length: number): Promise<Uint8Array> {
  const operation = `read 0x${offset.toString(16)} 0x${length.toString(16)}`;
  if (length <= hexdumpReadBytesMax) {
    try {
      return await io.read(offset, length);
    } catch (error) {
      // qemu-io answers EIO for a read past the end: a disk shorter than the model's is a typed finding, not an I/O failure
      if (!(error instanceof QemuIoError && error.errno === 'EIO')) throw error;
      await io.flush();
      const size = await headerVirtualSize(path);
      if (offset + length > size) throw new GuestDiskShortError(operation, offset + length, size);
      throw error;
    }
  }
  await io.flush();
  const disk = await qemuImgReadRaw(path, { forceShare: true });
  if (offset + length > disk.length) throw new GuestDiskShortError(operation, offset + length, disk.length);
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
    case 'writeCompressed':
      // EIO inside the disk: qcow2_alloc_compressed_cluster_offset found a host offset
      if (errno === 'EIO') return op.offset + op.length > virtualSize ? 'out-of-range' : 'compressed-overwrite';
      // qemu-io itself refuses -c with an offset or count that is not whole sectors
      return errno === 'EINVAL' || /is not a sector-aligned value/.test(message) ? 'invalid-argument' : undefined;
    case 'resize':
      if (/multiple of 512/.test(message)) return 'invalid-argument';
      if (/Can't resize a v2 image which has snapshots/.test(message)) return 'unsupported';
      // growing a version 2 overlay over a longer backing file (bdrv_co_truncate's zero write)
      if (/Failed to zero out new clusters/.test(message)) return 'unsupported';
      return undefined;
    case 'commit':
      if (/does not have a backing file/.test(message)) return 'invalid-argument';
      // growing a v2 backing file over a longer one of its own fails inside the mirror job: "Block job failed: Operation not supported"
      return /Can't resize a v2 image which has snapshots|Failed to zero out new clusters|Block job failed: Operation not supported/.test(message) ? 'unsupported' : undefined;
    case 'createOverlay':
    case 'rebase':
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

/**
 * createOverlay with QEMU on the closed image at `path`: it becomes the
 * backing file `file` (renamed, or written out in full as raw by qemu-img
 * convert and removed), and `qemu-img create -b FILE -F FMT` puts a new empty
 * image of `options` at `path` over it.
 */
export async function qemuPushOverlay(path: string, file: ChainFile, options: ImageOptions): Promise<void> {
  await moveToBacking(path, file, (target) => qemuImgWriteRawInFull(path, target));
  await qemuImgCreate(path, { ...createConstraints(options), extraOptions: { backing_file: file.name, backing_fmt: file.format } });
}

/**
 * The sessions run with `-t unsafe`: writeback without fdatasync. Nothing here
 * survives a host crash or needs to, and qemu-io's default (writethrough)
 * spends about 4 ms in fdatasync per write on this machine (200 writes: 0.85 s,
 * against 0.02 s). Every reader outside the session (qemu-img, our engine,
 * imageBytes) comes after a flush or a close, which write QEMU's caches to the
 * file in every mode.
 */
export const qemuIoCache: QemuIoCacheMode = 'unsafe';

/**
 * The qemu-io session on one image file, opened when an op first needs it.
 * `qemu-img snapshot` needs the file to itself, so the session is closed around
 * it (`offline`) and started again only by the next op that talks to qemu-io:
 * consecutive snapshot ops, or the end of a sequence right after one, start no
 * qemu-io (each start is a process and about 20 ms of qemu-io's own start-up).
 */
/** How a session opens its image: qemu-io's filename for it (say `blkdebug:RULES:IMAGE`) and what else the session needs. */
export interface QemuIoOpening {
  readonly filename: string;
  readonly unbufferedOutput: boolean;
}

export class LazyQemuIo {
  private session: Promise<QemuIoSession> | undefined;

  /** `opening`: the image opened otherwise than as `path` itself. */
  constructor(
    readonly path: string,
    private readonly opening?: QemuIoOpening,
  ) {}

  /** The open session; opens it first if needed (QemuIoError when QEMU cannot open the image). */
  io(): Promise<QemuIoSession> {
    const filename = this.opening?.filename ?? this.path;
    this.session ??= openQemuIo(filename, { cache: qemuIoCache, unbufferedOutput: this.opening?.unbufferedOutput ?? false }).catch((error: unknown) => {
      this.session = undefined;
      throw error;
    });
    return this.session;
  }

  /** Runs `task` with the session closed, then hands `onSize` the virtual size the header records (also when `task` failed). */
  async offline(task: () => Promise<void>, onSize: (size: number) => void): Promise<void> {
    await this.close();
    try {
      await task();
    } finally {
      onSize(await headerVirtualSize(this.path));
    }
  }

  /** Quits qemu-io if it runs; the file is then complete on its own. */
  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session !== undefined) await (await session).close();
  }
}

/**
 * One image file driven by a qemu-io session that can be closed for qemu-img
 * (the QEMU driver, and the fault driver's plain process): guest reads through
 * the session, and the file brought up to date for reading its bytes.
 */
export abstract class QemuSessionDriver extends ImageFileDriver {
  abstract readonly name: string;
  protected readonly qemu: LazyQemuIo;
  protected abstract virtualSize: number;
  /** Whether the image has lazy refcounts now (settleSession). */
  protected abstract lazyRefcountsOn(): boolean;
  /** A createOverlay made a new top image with these options. */
  protected abstract overlayCreated(options: ImageOptions): void;
  /** The backing files laid out next to the image (chain-files.ts). */
  protected chain: ChainFiles = noChain;

  constructor(
    protected readonly path: string,
    opening?: QemuIoOpening,
  ) {
    super();
    this.qemu = new LazyQemuIo(path, opening);
  }

  /** Runs `task` with the session closed and re-reads the size (revert may change it). */
  protected offline(task: () => Promise<void>): Promise<void> {
    return this.qemu.offline(task, (size) => {
      this.virtualSize = size;
    });
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    try {
      return await readQemuGuest(await this.qemu.io(), this.path, offset, length);
    } catch (error) {
      throw implementationError(this.name, `read 0x${offset.toString(16)} 0x${length.toString(16)}`, error);
    }
  }

  /**
   * With lazy refcounts QEMU 7.2 leaves the refcount blocks stale on flush (the
   * dirty bit covers them) and brings them up to date only on close, so the
   * bytes are taken from a cleanly closed image; otherwise a flush suffices.
   */
  protected async settleSession(): Promise<void> {
    if (this.lazyRefcountsOn()) await this.offline(() => Promise.resolve());
    else await (await this.qemu.io()).flush();
  }

  /**
   * Runs `op` in the process `session` gives (asked only by the ops qemu-io
   * runs); snapshot and chain ops run with the session closed (qemu-img needs
   * the image to itself).
   */
  protected async applyIn(session: () => Promise<QemuIoSession>, op: Op): Promise<void> {
    if (isGuestDataOp(op)) return applyQemuIoGuestOp(await session(), op);
    switch (op.kind) {
      case 'resize':
        await (await session()).truncate(op.size);
        this.virtualSize = op.size;
        return;
      case 'flush':
        return (await session()).flush();
      case 'snapshotCreate':
        return this.offline(() => qemuImgSnapshot(this.path, 'create', op.name));
      case 'snapshotRevert':
        return this.offline(() => qemuImgSnapshot(this.path, 'apply', op.name));
      case 'snapshotDelete':
        return this.offline(() => qemuImgSnapshot(this.path, 'delete', op.name));
      case 'reopen':
        // closed here; the next op that needs qemu-io opens the image again
        return this.offline(() => Promise.resolve());
      case 'createOverlay': {
        const file = overlayBackingFile(this.chain, op);
        await this.offline(() => qemuPushOverlay(this.path, file, op.options));
        this.chain = chainAfter(this.chain, op);
        this.overlayCreated(op.options);
        return;
      }
      case 'rebase': {
        const target = backingAt(this.chain, op.depth);
        await this.offline(() => qemuImgRebase(this.path, { backingFile: target?.name, backingFormat: target?.format, unsafe: op.unsafe }));
        this.chain = chainAfter(this.chain, op);
        return;
      }
      case 'commit':
        return this.offline(() => qemuImgCommit(this.path));
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  /** The backing files next to the image, nearest first. */
  backingChain(): readonly ChainFile[] {
    return this.chain.backings;
  }

  backingFileBytes(): Promise<readonly Uint8Array[]> {
    return readBackingFiles(this.path, this.chain);
  }

  /** The image, and its backing files next to it under their names, so that the copy is a working chain. */
  override async writeTo(path: string): Promise<void> {
    await super.writeTo(path);
    await copyBackingFiles(this.path, path, this.chain);
  }
}

class QemuDriver extends QemuSessionDriver implements ImageDriver {
  readonly name = 'qemu (qemu-io session + qemu-img snapshot)';

  constructor(
    private readonly tmp: DirectoryResult,
    path: string,
    protected virtualSize: number,
    private lazyRefcounts: boolean,
  ) {
    super(path);
  }

  protected lazyRefcountsOn(): boolean {
    return this.lazyRefcounts;
  }

  protected overlayCreated(options: ImageOptions): void {
    this.lazyRefcounts = options.lazyRefcounts;
  }

  async open(): Promise<void> {
    await this.qemu.io();
  }

  async apply(op: Op): Promise<Outcome> {
    try {
      await this.applyIn(() => this.qemu.io(), op);
      return okOutcome;
    } catch (error) {
      const kind = qemuErrorKind(op, error, this.virtualSize);
      if (kind !== undefined) return refused(kind, error instanceof Error ? error.message : String(error));
      throw implementationError(this.name, formatOp(op), error);
    }
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
