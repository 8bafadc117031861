// The public engine: one open qcow2 image. Operations are serialised (one at a
// time, in call order), checked before they change anything, and delegate to the
// job files (data-path, zero-discard, resize, snapshot, flush).
import type { BlockFile } from './io/block-file.js';
import type { ImageState, WallClock } from './state.js';
import { NodeFile } from './io/node-file.js';
import { Qcow2Error } from './errors.js';
import { compressionTypeZstd, incompatCorrupt, incompatDirty } from './limits.js';
import { openState } from './open.js';
import { qualifyCreateOptions, sizeFromBacking, writeNewImage, type CreateOptions, type SizedCreateOptions } from './create.js';
import { readGuest, writeGuest } from './data-path.js';
import { writeCompressedGuest } from './compressed-write.js';
import { discardGuest, writeZeroesGuest } from './zero-discard.js';
import { resizeImage } from './resize.js';
import { createSnapshot, deleteSnapshot, revertSnapshot } from './snapshot.js';
import { flushMetadata, writeHeader } from './flush.js';
import { mapImage, type MapEntry } from './map.js';
import { repairRefcounts, type RepairMode, type RepairResult } from './repair.js';
import { snapshotIcount } from './format/snapshot-table.js';
import { fullBackingPath, openBacking, readClipped, type BackingLayer, type ChainContext, type ChainMapEntry } from './backing.js';
import { canEmptyCompletely, commitToBacking, emptyByDiscard, rebaseImage, writeCompletelyEmpty, type RebaseOptions, type WritableBase } from './chain.js';
import { realpath } from 'node:fs/promises';

export type { CreateOptions } from './create.js';
export type { MapEntry } from './map.js';
export type { RebaseOptions } from './chain.js';
export type { BackingFormat } from './backing.js';

export interface OpenOptions {
  readOnly?: boolean;
  /** openFile only: qemu-img's -U, share the file with writers (read-only opens only). */
  forceShare?: boolean;
  /**
   * Read-write opens of an image with persistent dirty bitmaps are refused
   * (Qcow2BitmapsError), as the engine cannot update them. true drops them
   * instead, as the spec allows: autoclear bit 0 is cleared, QEMU then ignores
   * the bitmaps, and their clusters leak (`qemu-img check -r leaks` frees them).
   */
  dropBitmaps?: boolean;
  l2CacheEntries?: number;
  refcountCacheEntries?: number;
  /** Wall clock for snapshot dates (default: the system clock). */
  clock?: WallClock;
  /**
   * Open the backing chain (default true). false leaves it closed, as
   * qemu-img info does (BDRV_O_NO_BACKING): guest reads then see zeros where
   * the backing file would show, and of all changes only `rebase` with
   * `unsafe` is allowed (anything else could copy those zeros into the image).
   */
  backing?: boolean;
  /**
   * The image's path, which relative backing names are resolved against
   * (bdrv_get_full_backing_filename). openFile sets it; for open(), names are
   * resolved against the current directory when it is absent.
   */
  filename?: string;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  vmStateSize: number;
  diskSize: number;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  /** Record/replay instruction count: 0 for snapshots qemu-img (and this engine) create; absent when disabled (-1) or not recorded. */
  icount?: bigint;
}

/** A persistent dirty bitmap as `qemu-img info` lists it. */
export interface BitmapInfo {
  name: string;
  /** Bytes of guest data per bit. */
  granularity: number;
  /** The in_use flag: the bitmap was not stored cleanly and is inconsistent. */
  inUse: boolean;
  /** The auto flag: the bitmap is enabled. */
  auto: boolean;
}

export interface ImageInfo {
  virtualSize: number;
  clusterSize: number;
  version: 2 | 3;
  refcountBits: number;
  lazyRefcounts: boolean;
  compressionType: 'zlib' | 'zstd';
  dirty: boolean;
  corrupt: boolean;
  /** Incompatible bit 4: extended L2 entries (subclusters); absent means false. */
  extendedL2?: boolean;
  fileLength: number;
  snapshots: SnapshotInfo[];
  bitmaps: BitmapInfo[];
  /** The backing file name as stored in the header. */
  backingFile?: string;
  /** The backing-format header extension, when there is a backing file (as qemu-img info shows it). */
  backingFormat?: string;
}

const systemClock: WallClock = () => {
  const ms = new Date().getTime();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
};

export class Qcow2Image {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** An I/O error left a snapshot operation half-done in memory and the metadata could not be read back yet (snapshotOp). */
  private stale = false;
  readonly snapshots: {
    /** qemu-img snapshot -c: any name, duplicates and '' included; the ID is the next free number. */
    create(name: string): Promise<void>;
    /** qemu-img snapshot -a: the snapshot with this ID, else the first one with this name. */
    revert(idOrName: string): Promise<void>;
    /** qemu-img snapshot -d: the first snapshot with this name (by name only, as qemu-img 7.2). */
    delete(name: string): Promise<void>;
    list(): SnapshotInfo[];
  };

  private constructor(
    private s: ImageState,
    /** The image's path (relative backing names are resolved against it). */
    readonly filename: string | undefined,
    private readonly chain: ChainContext,
    /** Opens the image file again with the same options (after commit rebuilt its metadata). */
    private readonly reopenState: () => Promise<ImageState>,
  ) {
    this.snapshots = {
      create: (name) => this.snapshotOp(() => createSnapshot(this.s, name)),
      revert: (idOrName) => this.snapshotOp(() => revertSnapshot(this.s, idOrName)),
      delete: (name) => this.snapshotOp(() => deleteSnapshot(this.s, name)),
      list: () => this.s.snapshots.map((e) => {
        const info: SnapshotInfo = {
          id: e.id, name: e.name, vmStateSize: e.vmStateSize, diskSize: e.diskSize ?? this.s.header.size,
          dateSec: e.dateSec, dateNsec: e.dateNsec, vmClockNsec: e.vmClockNsec,
        };
        const icount = snapshotIcount(e);
        if (icount !== undefined) info.icount = icount;
        return info;
      }),
    };
  }

  /**
   * Write a new image into `file` (qemu-img create -f qcow2 [-b FILE -F FMT])
   * and open it read-write with its chain. `openOptions.filename` is where the
   * image lives (relative backing names are resolved against it). Without a
   * size, the backing file is opened for its size. Errors: 'invalid-argument'
   * for bad options (no size and no backing file, a backing file without
   * format), and the open's errors (a backing file that cannot be opened).
   */
  static async create(file: BlockFile, options: CreateOptions, openOptions: OpenOptions = {}): Promise<Qcow2Image> {
    const sized = await Qcow2Image.settleSize(options, openOptions.filename);
    await writeNewImage(file, qualifyCreateOptions(sized));
    return Qcow2Image.open(file, { ...openOptions, readOnly: false });
  }

  /**
   * Open the backing file `name` of the image at `overlayPath` (which need not
   * exist yet) read-only with its own chain, as an open of that image would:
   * for qemu-img create's size and check's "Could not open backing file".
   * `format` undefined: probed. Errors: as open's for the backing file.
   */
  static async openBackingFile(overlayPath: string, name: string, format: string | undefined): Promise<BackingLayer> {
    const top = [await realpathOrSelf(overlayPath)];
    return openBacking(overlayPath, name, format, { above: top, openQcow2: (f, n, c) => Qcow2Image.openLayer(f, n, c) });
  }

  /** qemu-img create's default size: the backing file's (which must then open). */
  private static async settleSize(options: CreateOptions, filename: string | undefined): Promise<SizedCreateOptions> {
    if (options.size !== undefined) return { ...options, size: options.size };
    if (options.backingFile === undefined) throw new Qcow2Error('invalid-argument', 'image creation needs a size (or a backing file to take it from)');
    const layer = await Qcow2Image.openBackingFile(filename ?? '', options.backingFile, options.backingFormat);
    const size = sizeFromBacking(layer.size);
    await layer.close();
    return { ...options, size };
  }

  /**
   * Open a qcow2 image and, unless `options.backing` is false, its backing
   * chain, read-only (qcow2 and raw layers; see backing.ts for names, format
   * probing, loops and the depth limit). Errors: Qcow2Error and its subclasses;
   * a backing file that cannot be opened is 'io' naming it (QEMU: "Could not
   * open backing file"); the image file itself is not closed on error.
   */
  static async open(file: BlockFile, options: OpenOptions = {}): Promise<Qcow2Image> {
    const top = options.filename === undefined ? [] : [await realpathOrSelf(options.filename)];
    return Qcow2Image.openInChain(file, options, { above: top, openQcow2: (f, name, c) => Qcow2Image.openLayer(f, name, c) });
  }

  /** A qcow2 backing file: opened read-only with its own chain, as a layer. */
  private static async openLayer(file: BlockFile, filename: string, chain: ChainContext): Promise<BackingLayer> {
    const image = await Qcow2Image.openInChain(file, { readOnly: true, filename }, chain);
    return new Qcow2Layer(image, filename, (from, to) => image.serial(() => mapImage(image.s, from, to)), () => image.s.backing);
  }

  private static async openInChain(file: BlockFile, options: OpenOptions, chain: ChainContext): Promise<Qcow2Image> {
    const readOnly = options.readOnly ?? false;
    const constraints = {
      readOnly,
      dropBitmaps: options.dropBitmaps,
      l2CacheEntries: options.l2CacheEntries,
      refcountCacheEntries: options.refcountCacheEntries,
      clock: options.clock ?? systemClock,
    };
    const state = await openState(file, constraints);
    if (state.backingName !== undefined && options.backing !== false) {
      state.backing = await openBacking(options.filename, state.backingName, state.ext.backingFormat, chain);
    }
    return new Qcow2Image(state, options.filename, chain, () => openState(file, constraints));
  }

  /**
   * create() on a new file at `path` (emptied if it exists). With
   * `openOptions.backing` false (qemu-img create -u), the backing file is not
   * opened and the image is returned read-only.
   */
  static async createFile(path: string, options: CreateOptions, openOptions: OpenOptions = {}): Promise<Qcow2Image> {
    const qualified = qualifyCreateOptions(await Qcow2Image.settleSize(options, path));
    if (qualified.backingFile !== undefined && (await realpathOrSelf(fullBackingPath(path, qualified.backingFile))) === (await realpathOrSelf(path))) {
      throw new Qcow2Error('invalid-argument', `'${path}' cannot be its own backing file`);
    }
    const file = await NodeFile.open(path, { readOnly: false, create: true });
    if (openOptions.backing === false) {
      try {
        await writeNewImage(file, qualified);
      } finally {
        await file.close();
      }
      return Qcow2Image.openFile(path, { ...openOptions, readOnly: true });
    }
    try {
      await writeNewImage(file, qualified);
      return await Qcow2Image.open(file, { ...openOptions, filename: path, readOnly: false });
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  static async openFile(path: string, options: OpenOptions = {}): Promise<Qcow2Image> {
    const file = await NodeFile.open(path, { readOnly: options.readOnly ?? false, forceShare: options.forceShare ?? false });
    try {
      return await Qcow2Image.open(file, { ...options, filename: path });
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  get virtualSize(): number {
    return this.s.header.size;
  }

  get readOnly(): boolean {
    return this.s.readOnly;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.serial(async () => {
      this.checkRange(offset, length, 'read');
      return readGuest(this.s, offset, length);
    });
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    return this.mutate(async () => {
      this.checkRange(offset, data.length, 'write');
      if (data.length > 0) await writeGuest(this.s, offset, data);
    });
  }

  /**
   * qemu-io `write -c`: `data` as compressed clusters at a cluster-aligned
   * `offset`, whole clusters except at the end of the disk. Errors:
   * 'invalid-argument' (not whole sectors, checked first, or not whole clusters),
   * 'out-of-range', 'compressed-overwrite'
   * (a cluster already has a host offset; every other cluster is written).
   */
  writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    return this.mutate(async () => {
      // qemu-io refuses partial sectors first, even past the end of the disk.
      if (offset % 512 !== 0 || data.length % 512 !== 0) {
        throw new Qcow2Error('invalid-argument', `compressed write: ${data.length} bytes at ${offset} are not whole 512-byte sectors`);
      }
      this.checkRange(offset, data.length, 'compressed write');
      if (data.length > 0) await writeCompressedGuest(this.s, offset, data);
    });
  }

  writeZeroes(offset: number, length: number, options: { unmap?: boolean } = {}): Promise<void> {
    return this.mutate(async () => {
      this.checkRange(offset, length, 'write zeroes');
      if (length > 0) await writeZeroesGuest(this.s, offset, length, options.unmap ?? false);
    });
  }

  discard(offset: number, length: number): Promise<void> {
    return this.mutate(async () => {
      this.checkRange(offset, length, 'discard');
      if (length > 0) await discardGuest(this.s, offset, length);
    });
  }

  flush(): Promise<void> {
    return this.serial(async () => {
      if (!this.s.readOnly) await flushMetadata(this.s);
      await this.s.file.flush();
    });
  }

  resize(newSize: number): Promise<void> {
    return this.mutate(() => resizeImage(this.s, newSize));
  }

  /**
   * qemu-img map --output=json entries of the whole disk, cluster by cluster
   * merged; unallocated clusters show the backing chain's status one deeper.
   */
  map(): Promise<MapEntry[]> {
    return this.serial(() => mapImage(this.s));
  }

  /** The opened backing chain below this image, the nearest first (empty without one, or when not opened). */
  get backingChain(): readonly BackingLayer[] {
    const layers: BackingLayer[] = [];
    for (let layer = this.s.backing; layer !== undefined; layer = layer.below[0]) layers.push(layer);
    return layers;
  }

  /**
   * qemu-img rebase: point the image at another backing file (`backingFile`
   * null: none). Safe mode first copies into the image every cluster whose
   * guest view would change (see chain.ts); `unsafe` only rewrites the header.
   * Errors: 'read-only'; 'io' for a backing file that cannot be opened (safe
   * mode needs the old and the new one); 'unsupported' for a name or format
   * that do not fit in the header cluster.
   */
  rebase(options: RebaseOptions): Promise<void> {
    return this.mutate(() => rebaseImage(this.s, options, (name, format) => openBacking(this.filename, name, format, this.chain)), options.unsafe ? 'header' : 'data');
  }

  /**
   * qemu-img commit: the image's allocated clusters are written into its
   * backing file (opened read-write for this only, and grown to the image's
   * size if smaller), then the image is emptied (every cluster unallocated),
   * so its guest view is unchanged. Errors: 'read-only'; 'invalid-argument'
   * without an open backing file.
   */
  commit(): Promise<void> {
    return this.mutate(async () => {
      await commitToBacking(this.s, (name, format) => openBacking(this.filename, name, format, this.chain), openWritableBase);
      if (!canEmptyCompletely(this.s)) return emptyByDiscard(this.s);
      await writeCompletelyEmpty(this.s);
      const backing = this.s.backing;
      this.s = await this.reopenState();
      this.s.backing = backing;
    });
  }

  info(): Promise<ImageInfo> {
    return this.serial(async () => {
      const h = this.s.header;
      const info: ImageInfo = {
        virtualSize: h.size,
        clusterSize: this.s.g.clusterSize,
        version: h.version,
        refcountBits: 1 << h.refcountOrder,
        lazyRefcounts: this.s.lazyRefcounts,
        compressionType: h.compressionType === compressionTypeZstd ? 'zstd' : 'zlib',
        dirty: (h.incompatibleFeatures & incompatDirty) !== 0n,
        corrupt: (h.incompatibleFeatures & incompatCorrupt) !== 0n,
        extendedL2: this.s.g.extendedL2,
        fileLength: await this.s.file.length(),
        snapshots: this.snapshots.list(),
        bitmaps: this.s.bitmaps.map((bm) => ({ name: bm.name, granularity: 2 ** bm.granularityBits, inUse: bm.inUse, auto: bm.auto })),
      };
      if (this.s.backingName !== undefined) info.backingFile = this.s.backingName;
      // bdrv_query_image_info reports the format only with a backing file (an empty name leaves the extension unshown)
      if (this.s.backingName !== undefined && this.s.ext.backingFormat !== undefined) info.backingFormat = this.s.ext.backingFormat;
      return info;
    });
  }

  /**
   * `check -r leaks|all` (repair.ts): rebuild the refcounts from the references
   * and report what changed. A dirty image was already repaired whole when it
   * was opened read-write: the first repair reports those fixes too, as
   * qemu-img check -r counts them (whatever the mode). Errors: 'read-only',
   * 'corrupt' (see repairRefcounts).
   */
  repair(mode: RepairMode): Promise<RepairResult> {
    return this.mutate(async () => {
      // drops made in memory become durable first: the rebuild starts from what the file says
      await flushMetadata(this.s);
      const now = await repairRefcounts(this.s, mode);
      const atOpen = this.s.dirtyRepair;
      this.s.dirtyRepair = undefined;
      if (atOpen === undefined) return now;
      return {
        leaks: [...atOpen.leaks, ...now.leaks],
        corruptions: [...atOpen.corruptions, ...now.corruptions],
        copiedFixed: atOpen.copiedFixed + now.copiedFixed,
      };
    });
  }

  /** Flush, clear the dirty bit of lazy refcounts, close the file. */
  close(): Promise<void> {
    return this.serial(async () => {
      if (!this.s.readOnly) {
        await flushMetadata(this.s);
        if ((this.s.header.incompatibleFeatures & incompatDirty) !== 0n) {
          // qcow2_mark_clean rebuilds the whole header.
          this.s.header.incompatibleFeatures &= ~incompatDirty;
          this.s.headerRebuild = true;
          await writeHeader(this.s);
        }
        await this.s.file.flush();
      }
      this.closed = true;
      await this.s.file.close();
      await this.s.backing?.close();
    });
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new Qcow2Error('invalid-argument', `${what}: bad range offset ${offset} length ${length}`);
    }
    if (offset + length > this.s.header.size) {
      throw new Qcow2Error('out-of-range', `${what} of ${length} bytes at ${offset} ends past the virtual size ${this.s.header.size}`);
    }
  }

  /**
   * A change: refused on a read-only image, and on an image whose backing file
   * was left closed unless it only touches the header (`what` 'header').
   */
  private mutate<T>(job: () => Promise<T>, what: 'data' | 'header' = 'data'): Promise<T> {
    return this.serial(() => {
      if (this.s.readOnly) throw new Qcow2Error('read-only', 'image is open read-only');
      if (what === 'data' && this.s.backingName !== undefined && this.s.backing === undefined) {
        throw new Qcow2Error('invalid-argument', `image was opened without its backing file '${this.s.backingName}': only an unsafe rebase may change it`);
      }
      return job();
    });
  }

  /**
   * A snapshot operation. Earlier operations' metadata is flushed first (an
   * error there changes nothing in memory). An I/O error after that may leave
   * the op half-done in memory (counts raised, flags or table not), so the
   * metadata is read back from the file: what the op's ordered writes left,
   * as a crash of the process at that point would (docs/semantics.md,
   * "Faults"). When that read fails too, it is retried before the next job.
   */
  private snapshotOp(job: () => Promise<void>): Promise<void> {
    return this.mutate(async () => {
      await flushMetadata(this.s);
      try {
        await job();
      } catch (error) {
        if (error instanceof Qcow2Error && error.code === 'io') {
          this.stale = true;
          await this.reload().catch(() => undefined);
        }
        throw error;
      }
    });
  }

  /** Drops the in-memory metadata and opens the file again, keeping the open backing chain. */
  private async reload(): Promise<void> {
    const backing = this.s.backing;
    this.s = await this.reopenState();
    this.s.backing = backing;
    this.stale = false;
  }

  /** Run jobs one at a time in call order; a failed job does not block the next. */
  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.closed) throw new Qcow2Error('invalid-argument', 'image is closed');
      if (this.stale) await this.reload();
      return job();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** A qcow2 backing file: the engine opened read-only, with its own chain. */
class Qcow2Layer implements BackingLayer {
  readonly format = 'qcow2';

  constructor(
    private readonly image: Qcow2Image,
    readonly filename: string,
    private readonly mapRange: (from: number, to: number) => Promise<MapEntry[]>,
    private readonly next: () => BackingLayer | undefined,
  ) {}

  get size(): number {
    return this.image.virtualSize;
  }

  get below(): readonly BackingLayer[] {
    const next = this.next();
    return next === undefined ? [] : [next];
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return readClipped(this.size, offset, length, (at, n) => this.image.read(at, n));
  }

  async map(offset: number, length: number): Promise<ChainMapEntry[]> {
    const entries = await this.mapRange(offset, offset + length);
    return entries.map((e) => ({ ...e, filename: e.filename ?? this.filename }));
  }

  close(): Promise<void> {
    return this.image.close();
  }
}

/** The path itself when it has no real path (missing): the open reports that. */
async function realpathOrSelf(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch {
    return path;
  }
}

/** commit's base, opened read-write: the engine for qcow2, the file itself for raw. */
async function openWritableBase(layer: BackingLayer): Promise<WritableBase> {
  if (layer.format === 'qcow2') {
    const image = await Qcow2Image.openFile(layer.filename, { readOnly: false });
    return {
      get size() {
        return image.virtualSize;
      },
      write: (offset, data) => image.write(offset, data),
      writeZeroes: (offset, length) => image.writeZeroes(offset, length, { unmap: true }),
      grow: (size) => image.resize(size),
      close: () => image.close(),
    };
  }
  const file = await NodeFile.open(layer.filename, { readOnly: false });
  let size = await file.length();
  return {
    get size() {
      return size;
    },
    write: (offset, data) => file.pwrite(offset, data),
    writeZeroes: (offset, length) => file.writeZeroesUnmap(offset, length),
    grow: async (newSize) => {
      await file.truncate(newSize);
      size = newSize;
    },
    close: async () => {
      await file.flush();
      await file.close();
    },
  };
}
