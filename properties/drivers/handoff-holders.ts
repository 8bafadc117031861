// The two programs that take turns holding the handoff property's image file:
// our engine on the file itself (Qcow2Image.openFile) and QEMU (one qemu-io
// session, closed while `qemu-img snapshot` runs). A holder applies every op
// except reopen (the handoff driver turns reopen into a change of holder) and
// says which of its failures are the model's refusals.
//
// The QEMU holder works around the known QEMU 7.2 divergences (docs/semantics.md,
// corpus cases with status known-qemu-divergence): they are QEMU's bugs, tracked
// and judged by `gate --impl qemu`; this property is about what each program
// makes of the other's image, and must not fail forever on them.
import { NodeFile, Qcow2Error, Qcow2Image, type BlockFile, type CreateOptions } from '../../impl/index.js';
import type { ImageOptions, OpErrorKind } from '../../model/index.js';
import { qemuImgCheck, qemuImgMap, qemuImgSnapshot } from '../../oracle/index.js';
import { isOpErrorKind } from '../driver.js';
import { applyEngineOp, type EngineOp } from './engine.js';
import { applyQemuIoGuestOp, isGuestDataOp, LazyQemuIo, qemuErrorKind, readQemuGuest } from './qemu.js';

export type HolderSide = 'ts' | 'qemu';
export type HeldOp = EngineOp;

export interface Holder {
  readonly side: HolderSide;
  /** Applies `op`; throws whatever the program threw. */
  apply(op: HeldOp): Promise<void>;
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

/** Opens (or creates with `create`) the image at `path` with the engine on an UnsyncedFile. */
export async function openEngineImage(path: string, create?: CreateOptions): Promise<Qcow2Image> {
  const file = await UnsyncedFile.open(path, create !== undefined);
  try {
    return create === undefined ? await Qcow2Image.open(file) : await Qcow2Image.create(file, create);
  } catch (error) {
    await file.close();
    throw error;
  }
}

export class EngineHolder implements Holder {
  readonly side = 'ts';

  private constructor(private readonly image: Qcow2Image) {}

  static async open(path: string): Promise<EngineHolder> {
    return new EngineHolder(await openEngineImage(path));
  }

  apply(op: HeldOp): Promise<void> {
    return applyEngineOp(this.image, op);
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
    private readonly clusterBits: number,
    private readonly lazyRefcounts: boolean,
    private readonly extendedL2: boolean,
  ) {}

  /**
   * Opens the image in qemu-io at once (the handoff itself: QEMU must open what
   * the engine left). `size` is the virtual size the previous holder left
   * (QEMU's refusals past the end are judged against it).
   */
  static async open(path: string, size: number, options: ImageOptions): Promise<QemuHolder> {
    const holder = new QemuHolder(new LazyQemuIo(path), size, options.clusterBits, options.lazyRefcounts, options.extendedL2 === true);
    await holder.qemu.io();
    return holder;
  }

  private get path(): string {
    return this.qemu.path;
  }

  async apply(op: HeldOp): Promise<void> {
    if (op.kind === 'writeCompressed') return this.writeCompressed(op);
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
    const clusterSize = 2 ** this.clusterBits;
    const tailEnd = Math.min(size, Math.ceil(oldSize / clusterSize) * clusterSize);
    if (size <= oldSize || oldSize % clusterSize === 0 || tailEnd <= oldSize) return;
    await io.flush();
    const map = await qemuImgMap(this.path, { forceShare: true });
    const clusterStart = Math.floor(oldSize / clusterSize) * clusterSize;
    const inCluster = map.filter((e) => e.start < tailEnd && clusterStart < e.start + e.length);
    if (!this.extendedL2) {
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
    if (this.lazyRefcounts) await this.offline(() => Promise.resolve());
    else await (await this.qemu.io()).flush();
  }

  virtualSize(): Promise<number> {
    return Promise.resolve(this.size);
  }

  close(): Promise<void> {
    return this.qemu.close();
  }
}
