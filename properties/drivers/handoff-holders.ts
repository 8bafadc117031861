// The two programs that take turns holding the handoff property's image file:
// our engine on the file itself (Qcow2Image.open with the file's path, so that
// it opens the backing chain by the names QEMU resolves) and QEMU (one qemu-io
// session, closed while `qemu-img snapshot`, `create -b`, `rebase` or `commit`
// runs). A holder applies every op except reopen (the handoff driver turns
// reopen into a change of holder), chain ops included, on the chain files
// chain-files.ts lays out, and says which of its failures are the model's
// refusals.
//
// The QEMU holder works around the known QEMU 7.2 divergences (docs/semantics.md,
// corpus cases with status known-qemu-divergence): they are QEMU's bugs, tracked
// and judged by `gate --impl qemu`; this property is about what each program
// makes of the other's image, and must not fail forever on them.
import { writeFile } from 'node:fs/promises';
import { NodeFile, Qcow2Error, Qcow2Image, type BlockFile, type CreateOptions } from '../../impl/index.js';
import type { CommitOp, CreateOverlayOp, ImageOptions, Op, OpErrorKind, RebaseOp } from '../../model/index.js';
import { qemuImgCheck, qemuImgCommit, qemuImgMap, qemuImgRebase, qemuImgSnapshot } from '../../oracle/index.js';
import { isOpErrorKind } from '../driver.js';
import { backingAt, moveToBacking, overlayBackingFile, type ChainFiles } from './chain-files.js';
import { applyEngineOp, createOptionsFor } from './engine.js';
import { applyQemuIoGuestOp, isGuestDataOp, LazyQemuIo, qemuErrorKind, qemuPushOverlay, readQemuGuest } from './qemu.js';

export type HolderSide = 'ts' | 'qemu';
export type HeldOp = Exclude<Op, { kind: 'reopen' }>;
type ChainOp = CreateOverlayOp | RebaseOp | CommitOp;

function isChainOp(op: HeldOp): op is ChainOp {
  return op.kind === 'createOverlay' || op.kind === 'rebase' || op.kind === 'commit';
}

export interface Holder {
  readonly side: HolderSide;
  /**
   * Applies `op`; throws whatever the program threw. `chain` is the backing
   * files before it (the handoff driver moves it on after a chain op succeeds).
   */
  apply(op: HeldOp, chain: ChainFiles): Promise<void>;
  /** The model's refusal kind for a failure of `op`, or undefined for a divergence. */
  refusal(op: HeldOp, error: unknown): OpErrorKind | undefined;
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Makes the file on disk what a reader must see (flushed; refcounts current). */
  settle(): Promise<void>;
  /** The current virtual size (handed to the next holder). */
  virtualSize(): Promise<number>;
  /** Closes the image cleanly; the file is then complete on its own. */
  close(): Promise<void>;
}

/**
 * The image file as the engine holds it, with barriers that do not wait for
 * the disk. This property is about what each program makes of the other's
 * file, not about a host crash (the crash tests cover ordering), and the
 * engine's flushes cost several fdatasync calls each; the bytes reach the
 * other program through the page cache all the same. QEMU's sessions skip
 * theirs the same way (`qemuIoCache`).
 */
export class UnsyncedFile implements BlockFile {
  constructor(private readonly file: NodeFile) {}

  static async open(path: string, create: boolean): Promise<UnsyncedFile> {
    return new UnsyncedFile(await NodeFile.open(path, { readOnly: false, create }));
  }

  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.file.pread(offset, length);
  }

  preadInto(offset: number, target: Uint8Array): Promise<void> {
    return this.file.preadInto(offset, target);
  }

  pwrite(offset: number, data: Uint8Array): Promise<void> {
    return this.file.pwrite(offset, data);
  }

  /** Writes are in the page cache once pwrite resolves: ordered for every other reader. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  truncate(length: number): Promise<void> {
    return this.file.truncate(length);
  }

  length(): Promise<number> {
    return this.file.length();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

/**
 * Opens (or creates with `create`) the image at `path` with the engine on an
 * UnsyncedFile, with its backing chain (relative names against `path`).
 */
export async function openEngineImage(path: string, create?: CreateOptions): Promise<Qcow2Image> {
  const file = await UnsyncedFile.open(path, create !== undefined);
  try {
    return create === undefined ? await Qcow2Image.open(file, { filename: path }) : await Qcow2Image.create(file, create, { filename: path });
  } catch (error) {
    await file.close();
    throw error;
  }
}

export class EngineHolder implements Holder {
  readonly side = 'ts';

  private constructor(
    private image: Qcow2Image,
    private readonly path: string,
  ) {}

  static async open(path: string): Promise<EngineHolder> {
    return new EngineHolder(await openEngineImage(path), path);
  }

  apply(op: HeldOp, chain: ChainFiles): Promise<void> {
    return isChainOp(op) ? this.applyChain(op, chain) : applyEngineOp(this.image, op);
  }

  private async applyChain(op: ChainOp, chain: ChainFiles): Promise<void> {
    switch (op.kind) {
      case 'rebase': {
        const target = backingAt(chain, op.depth);
        return this.image.rebase({ backingFile: target?.name ?? null, ...(target === undefined ? {} : { backingFormat: target.format }), unsafe: op.unsafe });
      }
      case 'commit':
        return this.image.commit();
      case 'createOverlay': {
        const file = overlayBackingFile(chain, op);
        const raw = file.format === 'raw' ? await this.image.read(0, this.image.virtualSize) : new Uint8Array();
        await this.image.close();
        await moveToBacking(this.path, file, (target) => writeFile(target, raw));
        this.image = await openEngineImage(this.path, { ...createOptionsFor(op.options), backingFile: file.name, backingFormat: file.format });
        return;
      }
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  refusal(_op: HeldOp, error: unknown): OpErrorKind | undefined {
    return error instanceof Qcow2Error && isOpErrorKind(error.code) ? error.code : undefined;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.image.read(offset, length);
  }

  settle(): Promise<void> {
    return this.image.flush();
  }

  virtualSize(): Promise<number> {
    return Promise.resolve(this.image.virtualSize);
  }

  close(): Promise<void> {
    return this.image.close();
  }
}

export class QemuHolder implements Holder {
  readonly side = 'qemu';
  /** An op since the last compressed write may have freed the cluster QEMU packs the next stream into. */
  private mayHaveFreed = false;

  private constructor(
    private readonly qemu: LazyQemuIo,
    private size: number,
    /** The options of the image held (a createOverlay changes them). */
    private options: ImageOptions,
  ) {}

  /**
   * Opens the image in qemu-io at once (the handoff itself: QEMU must open what
   * the engine left). `size` is the virtual size the previous holder left
   * (QEMU's refusals past the end are judged against it).
   */
  static async open(path: string, size: number, options: ImageOptions): Promise<QemuHolder> {
    const holder = new QemuHolder(new LazyQemuIo(path), size, options);
    await holder.qemu.io();
    return holder;
  }

  private get path(): string {
    return this.qemu.path;
  }

  async apply(op: HeldOp, chain: ChainFiles): Promise<void> {
    if (op.kind === 'writeCompressed') return this.writeCompressed(op);
    if (isChainOp(op)) return this.applyChain(op, chain);
    if (op.kind !== 'flush') this.mayHaveFreed = true;
    if (isGuestDataOp(op)) return applyQemuIoGuestOp(await this.qemu.io(), op);
    switch (op.kind) {
      case 'resize':
        return this.resize(op.size);
      case 'snapshotCreate':
        return this.offline(() => this.snapshotRepairingLeaks(op, 'create'));
      case 'snapshotRevert':
        return this.offline(() => this.snapshotRepairingLeaks(op, 'apply'));
      case 'snapshotDelete':
        return this.offline(() => qemuImgSnapshot(this.path, 'delete', op.name));
      case 'flush':
        return (await this.qemu.io()).flush();
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  /** Chain ops run with the session closed, as qemu-img runs them; the next op that needs qemu-io opens the new top. */
  private async applyChain(op: ChainOp, chain: ChainFiles): Promise<void> {
    switch (op.kind) {
      case 'rebase': {
        const target = backingAt(chain, op.depth);
        return this.offline(() => qemuImgRebase(this.path, { backingFile: target?.name, backingFormat: target?.format, unsafe: op.unsafe }));
      }
      case 'commit':
        return this.offline(() => qemuImgCommit(this.path));
      case 'createOverlay':
        await this.offline(() => qemuPushOverlay(this.path, overlayBackingFile(chain, op), op.options));
        this.options = op.options;
        return;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * Known divergence (corpus: stale data after shrink then grow): QEMU 7.2's
   * qcow2_co_truncate does not clear the bytes past an unaligned old end inside
   * the old last cluster, so they come back on growth (also when our engine did
   * the shrink). Like the model, zero them with a write when that cluster has a
   * host cluster: it holds data (normal, compressed); with subclusters only the
   * tail's data ranges in qemu-img map (allocated subclusters), or the whole
   * tail of a compressed cluster (data without an offset).
   */
  private async resize(size: number): Promise<void> {
    const oldSize = this.size;
    const io = await this.qemu.io();
    await io.truncate(size);
    this.size = size;
    const clusterSize = 2 ** this.options.clusterBits;
    const tailEnd = Math.min(size, Math.ceil(oldSize / clusterSize) * clusterSize);
    if (size <= oldSize || oldSize % clusterSize === 0 || tailEnd <= oldSize) return;
    await io.flush();
    const map = await qemuImgMap(this.path, { forceShare: true });
    const clusterStart = Math.floor(oldSize / clusterSize) * clusterSize;
    // the image's own clusters only: a range of a backing file (depth > 0) has no host cluster in it
    const inCluster = map.filter((e) => e.depth === 0 && e.start < tailEnd && clusterStart < e.start + e.length);
    if (this.options.extendedL2 !== true) {
      const hosted = inCluster.find((e) => e.start <= oldSize - 1 && oldSize - 1 < e.start + e.length)?.data === true;
      if (hosted) await io.write(oldSize, new Uint8Array(tailEnd - oldSize));
      return;
    }
    const compressed = inCluster.some((e) => e.data && e.offset === undefined);
    const stale = compressed ? [{ start: oldSize, length: tailEnd - oldSize, data: true }] : inCluster;
    for (const e of stale) {
      const from = Math.max(oldSize, e.start);
      const to = Math.min(tailEnd, e.start + e.length);
      if (e.data && from < to) await io.write(from, new Uint8Array(to - from));
    }
  }

  /**
   * Known divergence (docs/qemu-findings.md: compressed stream over a reused
   * cluster): QEMU 7.2's qcow2_alloc_bytes keeps packing streams into the
   * cluster of its last stream even after that cluster was freed and allocated
   * again (as an L2 table, say); its overlap check then refuses the write and
   * marks the image corrupt. A fresh qemu-io session starts with no
   * free_byte_offset, so the session is reopened when something may have freed.
   */
  private async writeCompressed(op: Extract<HeldOp, { kind: 'writeCompressed' }>): Promise<void> {
    if (this.mayHaveFreed) await this.qemu.close();
    this.mayHaveFreed = false;
    return applyQemuIoGuestOp(await this.qemu.io(), op);
  }

  /**
   * Known divergence (corpus: refcount-overflow leak): QEMU 7.2 leaks a cluster
   * when it refuses a snapshot create or revert because a refcount would
   * overflow; the model leaves the image unchanged. Repair only those leaks.
   */
  private async snapshotRepairingLeaks(op: Extract<HeldOp, { kind: 'snapshotCreate' | 'snapshotRevert' }>, action: 'create' | 'apply'): Promise<void> {
    try {
      await qemuImgSnapshot(this.path, action, op.name);
    } catch (error) {
      if (qemuErrorKind(op, error, this.size) === 'refcount-overflow') await qemuImgCheck(this.path, { repair: 'leaks' });
      throw error;
    }
  }

  /** Runs `task` with the session closed and re-reads the size (revert may change it); the next op that needs qemu-io reopens. */
  private offline(task: () => Promise<void>): Promise<void> {
    return this.qemu.offline(task, (size) => {
      this.size = size;
    });
  }

  refusal(op: HeldOp, error: unknown): OpErrorKind | undefined {
    return qemuErrorKind(op, error, this.size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return readQemuGuest(await this.qemu.io(), this.path, offset, length);
  }

  /** QEMU 7.2 brings lazy refcounts up to date only on close (see drivers/qemu.ts), so those images are closed. */
  async settle(): Promise<void> {
    if (this.options.lazyRefcounts) await this.offline(() => Promise.resolve());
    else await (await this.qemu.io()).flush();
  }

  virtualSize(): Promise<number> {
    return Promise.resolve(this.size);
  }

  close(): Promise<void> {
    return this.qemu.close();
  }
}
