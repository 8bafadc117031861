// Our engine on a FaultFile (impl/io/fault-file.ts): the driver of the
// crashConsistency property. Besides the ImageDriver calls it can arm an I/O
// error for the next operation and lose power: the file becomes a crash state
// drawn from a seed and the engine opens it again, as after a reboot.
// On a backing chain only the top image is on the FaultFile: createOverlay
// writes the image out as a backing file next to a path in a temporary
// directory (chain-files.ts), and the engine opens the chain by that path.
// The faults reach the top image alone; the chain ops run without faults and
// end flushed (a durable point, as qemu-img's close is).
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { dir, type DirectoryResult } from 'tmp-promise';
import { FaultFile, Qcow2Image, type FaultSpec, type OpenOptions } from '../../impl/index.js';
import { readCompressedCluster } from '../../impl/compressed.js';
import { geometry } from '../../impl/geometry.js';
import type { CommitOp, CreateOverlayOp, DecodedImage, ImageOptions, Op, Outcome, RebaseOp } from '../../model/index.js';
import { implementationError, type EngineReports, type ImageDriver, type ReportingDriver } from '../driver.js';
import { backingAt, chainAfter, chainFilePath, copyBackingFiles, noChain, overlayBackingFile, readBackingFiles, type ChainFile, type ChainFiles } from '../drivers/chain-files.js';
import type { FaultableOp } from './fault-step.js';
import { applyEngineOp, createOptionsFor, engineFlush, engineOutcome, engineRead, engineReports, isEngineOp } from '../drivers/engine.js';

export interface FaultDriver extends ReportingDriver {
  /** Arms one I/O error on the image file (counted from now). */
  arm(spec: FaultSpec): void;
  /** Clears it; returns how many accesses it failed. */
  disarm(): number;
  /** The power goes at the Nth write or flush from now (FaultFile.losePowerAt); crash() then follows. */
  losePowerAt(access: 'write' | 'flush', nth: number): void;
  /** Whether the power went. */
  powerLost(): boolean;
  /**
   * Power is lost: the image file becomes its crash state for `seed`, and the
   * engine opens it read-write. Returns the crash state's bytes as the disk
   * held them (before the open repaired anything). Throws CrashOpenError when
   * the engine cannot open it.
   */
  crash(seed: number): Promise<Uint8Array>;
  /** The crash state for `seed` without crashing (FaultFile.crashState). */
  crashState(seed: number): Promise<Uint8Array>;
  /** Offsets of the writes since the last completed flush (what a crash may lose). */
  pendingWriteOffsets(): readonly number[];
  /** Where the last armed error first failed: a file offset, or 'flush'; undefined when it failed nothing. */
  firstFailure(): number | 'flush' | undefined;
  /** The image file as it reads now (durable plus pending), without flushing. */
  fileBytes(): Uint8Array;
  /** The current virtual size as the engine reports it. */
  virtualSize(): number;
  /**
   * Flushes the engine, then runs `op` on a copy of the image file and returns
   * the copy's bytes after it (refused or not): where the op's writes go, for
   * the coverage of a fault inside it. The image itself only gets the flush.
   */
  imageAfter(op: FaultableOp): Promise<Uint8Array>;
}

/**
 * The guest bytes of every compressed stream the image references (active and
 * snapshots), by host byte offset, inflated by the engine's decompressor (zlib
 * or zstd, as the header says): what the model adopts a crash state with
 * (model/crash.ts stateFromImage). Throws Qcow2Error 'corrupt' for a stream
 * that does not inflate to one cluster.
 */
export async function compressedStreams(decoded: DecodedImage, fileBytes: Uint8Array): Promise<Map<number, Uint8Array>> {
  const h = decoded.header;
  const g = geometry(h.version, h.clusterBits, h.refcountOrder, h.extendedL2);
  const file = new FaultFile(fileBytes);
  const streams = new Map<number, Uint8Array>();
  for (const table of decoded.l2Tables.values()) {
    for (const e of table) {
      if (e.kind !== 'compressed' || e.host === undefined || streams.has(e.host)) continue;
      streams.set(e.host, await readCompressedCluster(file, { offset: e.host, length: e.length ?? 0 }, g, h.compressionType));
    }
  }
  return streams;
}

/** The engine refused to open a crash state: the message is the engine's. */
export class CrashOpenError extends Error {
  override readonly name = 'CrashOpenError';
}

export function isFaultDriver(driver: ImageDriver): driver is FaultDriver {
  return 'crash' in driver && 'arm' in driver;
}

const driverName = 'ts engine (FaultFile)';

class FaultEngineDriver implements FaultDriver {
  readonly name = driverName;
  private closed = false;
  /** The directory of the backing files, and the path the top image is named by (never written: its bytes are the FaultFile's). */
  private home: { readonly tmp: DirectoryResult; readonly path: string } | undefined;
  private chain: ChainFiles = noChain;

  constructor(
    private file: FaultFile,
    private image: Qcow2Image,
  ) {}

  apply(op: Op): Promise<Outcome> {
    return engineOutcome(this.name, op, async () => {
      if (op.kind === 'reopen') await this.reopen();
      else if (isEngineOp(op)) await applyEngineOp(this.image, op);
      else if (op.kind === 'createOverlay') await this.pushOverlay(op);
      else await this.changeChain(op);
    });
  }

  /** How the top image opens: by the path its backing names are resolved against, once it has a chain. */
  private openOptions(): OpenOptions {
    return this.home === undefined ? {} : { filename: this.home.path };
  }

  private async reopen(): Promise<void> {
    await this.image.close();
    this.file = new FaultFile(this.file.bytes());
    this.image = await Qcow2Image.open(this.file, this.openOptions());
  }

  /**
   * createOverlay: the image, closed, becomes the backing file next to the
   * top image's path (its qcow2 bytes, or its guest bytes as raw), and a new
   * empty image over it is created on a fresh FaultFile and flushed.
   */
  private async pushOverlay(op: CreateOverlayOp): Promise<void> {
    this.home ??= await chainHome();
    const file = overlayBackingFile(this.chain, op);
    const raw = file.format === 'raw' ? await this.image.read(0, this.image.virtualSize) : new Uint8Array();
    await this.image.close();
    await writeFile(chainFilePath(this.home.path, file), file.format === 'raw' ? raw : this.file.bytes());
    this.file = new FaultFile(new Uint8Array(0));
    this.image = await Qcow2Image.create(this.file, { ...createOptionsFor(op.options), backingFile: file.name, backingFormat: file.format }, this.openOptions());
    await this.image.flush();
    this.chain = chainAfter(this.chain, op);
  }

  /** rebase (onto the layer `depth` down, by its chain-file name) or commit, flushed at the end. */
  private async changeChain(op: RebaseOp | CommitOp): Promise<void> {
    if (op.kind === 'commit') {
      await this.image.commit();
    } else {
      const target = backingAt(this.chain, op.depth);
      await this.image.rebase({ backingFile: target?.name ?? null, ...(target === undefined ? {} : { backingFormat: target.format }), unsafe: op.unsafe });
      this.chain = chainAfter(this.chain, op);
    }
    await this.image.flush();
  }

  /** The backing files next to the image, nearest first. */
  backingChain(): readonly ChainFile[] {
    return this.chain.backings;
  }

  backingFileBytes(): Promise<readonly Uint8Array[]> {
    return this.home === undefined ? Promise.resolve([]) : readBackingFiles(this.home.path, this.chain);
  }

  arm(spec: FaultSpec): void {
    this.file.arm(spec);
  }

  disarm(): number {
    return this.file.disarm();
  }

  losePowerAt(access: 'write' | 'flush', nth: number): void {
    this.file.losePowerAt(access, nth);
  }

  powerLost(): boolean {
    return this.file.powerLost;
  }

  async crash(seed: number): Promise<Uint8Array> {
    const bytes = await this.file.crashState(seed);
    // The engine before the crash is dropped without a close (a close would flush); only its backing files are closed.
    await this.image.backingChain[0]?.close();
    this.file = new FaultFile(bytes);
    try {
      this.image = await Qcow2Image.open(this.file, this.openOptions());
    } catch (error) {
      throw new CrashOpenError(error instanceof Error ? `${error.name}: ${error.message}` : String(error), { cause: error });
    }
    return bytes;
  }

  crashState(seed: number): Promise<Uint8Array> {
    return this.file.crashState(seed);
  }

  pendingWriteOffsets(): readonly number[] {
    return this.file.pendingEntries.flatMap((e) => (e.kind === 'write' ? [e.offset] : []));
  }

  firstFailure(): number | 'flush' | undefined {
    const f = this.file.firstFailure;
    return f === undefined ? undefined : f.access === 'flush' ? 'flush' : f.offset;
  }

  fileBytes(): Uint8Array {
    return this.file.bytes();
  }

  async imageAfter(op: FaultableOp): Promise<Uint8Array> {
    const copy = new FaultFile(await this.imageBytes());
    // a copy of the top image: its backing names resolve where the top image's do
    const image = await Qcow2Image.open(copy, this.openOptions());
    await engineOutcome(this.name, op, () => applyEngineOp(image, op));
    await image.close();
    return copy.bytes();
  }

  virtualSize(): number {
    return this.image.virtualSize;
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return engineRead(this.name, this.image, offset, length);
  }

  async imageBytes(): Promise<Uint8Array> {
    await engineFlush(this.name, this.image);
    return this.file.bytes();
  }

  fileLength(): Promise<number> {
    return this.file.length();
  }

  reports(): Promise<EngineReports> {
    return engineReports(this.name, this.image);
  }

  /** The image, and its backing files next to it under their names, so that the copy is a working chain. */
  async writeTo(path: string): Promise<void> {
    await writeFile(path, await this.imageBytes());
    if (this.home !== undefined) await copyBackingFiles(this.home.path, path, this.chain);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.file.disarm();
    try {
      await this.image.close();
    } finally {
      await this.home?.tmp.cleanup();
    }
  }
}

/** A fresh directory for the backing files, and the path of the top image in it. */
async function chainHome(): Promise<{ readonly tmp: DirectoryResult; readonly path: string }> {
  const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-fault-chain-' });
  return { tmp, path: join(tmp.path, 'image.qcow2') };
}

/** A fresh image with these options on a FaultFile, created and flushed (nothing pending). */
export async function createFaultDriver(options: ImageOptions): Promise<FaultDriver> {
  const file = new FaultFile(new Uint8Array(0));
  try {
    const image = await Qcow2Image.create(file, createOptionsFor(options));
    await image.flush();
    return new FaultEngineDriver(file, image);
  } catch (error) {
    throw implementationError(driverName, 'create', error);
  }
}
