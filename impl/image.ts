// The public engine: one open qcow2 image. Operations are serialised (one at a
// time, in call order), checked before they change anything, and delegate to the
// job files (data-path, zero-discard, resize, snapshot, flush).
import type { BlockFile } from './io/block-file.js';
import type { ImageState, WallClock } from './state.js';
import { NodeFile } from './io/node-file.js';
import { Qcow2Error } from './errors.js';
import { compressionTypeZstd, incompatCorrupt, incompatDirty } from './limits.js';
import { openState } from './open.js';
import { qualifyCreateOptions, writeNewImage, type CreateOptions } from './create.js';
import { readGuest, writeGuest } from './data-path.js';
import { writeCompressedGuest } from './compressed-write.js';
import { discardGuest, writeZeroesGuest } from './zero-discard.js';
import { resizeImage } from './resize.js';
import { createSnapshot, deleteSnapshot, revertSnapshot } from './snapshot.js';
import { flushMetadata, writeHeader } from './flush.js';
import { mapImage, type MapEntry } from './map.js';
import { repairRefcounts, type RepairMode, type RepairResult } from './repair.js';
import { snapshotIcount } from './format/snapshot-table.js';

export type { CreateOptions } from './create.js';
export type { MapEntry } from './map.js';

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
  backingFile?: string;
  backingFormat?: string;
}

const systemClock: WallClock = () => {
  const ms = new Date().getTime();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
};

export class Qcow2Image {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  readonly snapshots: {
    /** qemu-img snapshot -c: any name, duplicates and '' included; the ID is the next free number. */
    create(name: string): Promise<void>;
    /** qemu-img snapshot -a: the snapshot with this ID, else the first one with this name. */
    revert(idOrName: string): Promise<void>;
    /** qemu-img snapshot -d: the first snapshot with this name (by name only, as qemu-img 7.2). */
    delete(name: string): Promise<void>;
    list(): SnapshotInfo[];
  };

  private constructor(private readonly s: ImageState) {
    this.snapshots = {
      create: (name) => this.mutate(() => createSnapshot(this.s, name)),
      revert: (idOrName) => this.mutate(() => revertSnapshot(this.s, idOrName)),
      delete: (name) => this.mutate(() => deleteSnapshot(this.s, name)),
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

  static async create(file: BlockFile, options: CreateOptions, openOptions: OpenOptions = {}): Promise<Qcow2Image> {
    await writeNewImage(file, qualifyCreateOptions(options));
    return Qcow2Image.open(file, { ...openOptions, readOnly: false });
  }

  static async open(file: BlockFile, options: OpenOptions = {}): Promise<Qcow2Image> {
    const state = await openState(file, {
      readOnly: options.readOnly ?? false,
      dropBitmaps: options.dropBitmaps,
      l2CacheEntries: options.l2CacheEntries,
      refcountCacheEntries: options.refcountCacheEntries,
      clock: options.clock ?? systemClock,
    });
    return new Qcow2Image(state);
  }

  static async createFile(path: string, options: CreateOptions, openOptions: OpenOptions = {}): Promise<Qcow2Image> {
    const qualified = qualifyCreateOptions(options);
    const file = await NodeFile.open(path, { readOnly: false, create: true });
    try {
      await writeNewImage(file, qualified);
      return await Qcow2Image.open(file, { ...openOptions, readOnly: false });
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  static async openFile(path: string, options: OpenOptions = {}): Promise<Qcow2Image> {
    const file = await NodeFile.open(path, { readOnly: options.readOnly ?? false, forceShare: options.forceShare ?? false });
    try {
      return await Qcow2Image.open(file, options);
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

  map(): Promise<MapEntry[]> {
    return this.serial(() => mapImage(this.s));
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
      if (this.s.ext.backingFormat !== undefined) info.backingFormat = this.s.ext.backingFormat;
      return info;
    });
  }

  /**
   * `check -r leaks|all` (repair.ts): rebuild the refcounts from the references
   * and report what changed. A dirty image was already repaired whole when it
   * was opened read-write. Errors: 'read-only', 'corrupt' (see repairRefcounts).
   */
  repair(mode: RepairMode): Promise<RepairResult> {
    return this.mutate(async () => {
      // drops made in memory become durable first: the rebuild starts from what the file says
      await flushMetadata(this.s);
      return repairRefcounts(this.s, mode);
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

  private mutate<T>(job: () => Promise<T>): Promise<T> {
    return this.serial(() => {
      if (this.s.readOnly) throw new Qcow2Error('read-only', 'image is open read-only');
      return job();
    });
  }

  /** Run jobs one at a time in call order; a failed job does not block the next. */
  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new Qcow2Error('invalid-argument', 'image is closed');
      return job();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}
