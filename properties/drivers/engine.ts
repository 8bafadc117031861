// Our engine (impl/) on an in-memory file: fast, and the bytes are at hand for
// decodeImage after every operation. The file is written out only when QEMU must
// judge it (writeTo). The first createOverlay moves the image to a temporary
// directory: a backing chain is files next to each other (chain-files.ts), which
// the engine opens by name, as the QEMU driver lays them out.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { MemoryFile, Qcow2Error, Qcow2Image, type BlockFile, type CreateOptions, type ImageInfo } from '../../impl/index.js';
import { compressedWriteBytes, formatOp, isChainOpKind, writeBytes, type CommitOp, type CreateOverlayOp, type ImageOptions, type Op, type Outcome, type RebaseOp } from '../../model/index.js';
import { implementationError, isOpErrorKind, okOutcome, refused, type EngineReports, type ImageDriver, type ReportingDriver } from '../driver.js';
import { backingAt, chainAfter, chainFilePath, copyBackingFiles, moveToBacking, noChain, overlayBackingFile, readBackingFiles, type ChainFile, type ChainFiles } from './chain-files.js';

export function createOptionsFor(options: ImageOptions): CreateOptions {
  return {
    size: options.virtualSize,
    clusterSize: 2 ** options.clusterBits,
    refcountBits: options.refcountBits,
    compat: options.version === 3 ? '1.1' : '0.10',
    lazyRefcounts: options.lazyRefcounts,
    ...(options.extendedL2 === true ? { extendedL2: true } : {}),
    compressionType: options.compressionType ?? 'zlib',
  };
}

/** Every op on one image: not reopen, which each caller handles its own way, nor the chain ops (the engine driver's own). */
export type EngineOp = Exclude<Op, { kind: 'reopen' } | CreateOverlayOp | RebaseOp | CommitOp>;

export function isEngineOp(op: Op): op is EngineOp {
  return op.kind !== 'reopen' && !isChainOpKind(op.kind);
}

/** Applies one op to an open engine image; throws whatever the engine threw. */
export function applyEngineOp(image: Qcow2Image, op: EngineOp): Promise<void> {
  switch (op.kind) {
    case 'write':
      return image.write(op.offset, writeBytes(op));
    case 'writeCompressed':
      return image.writeCompressed(op.offset, compressedWriteBytes(op));
    case 'writeZeroes':
      return image.writeZeroes(op.offset, op.length, { unmap: op.unmap });
    case 'discard':
      return image.discard(op.offset, op.length);
    case 'resize':
      return image.resize(op.size);
    case 'snapshotCreate':
      return image.snapshots.create(op.name);
    case 'snapshotRevert':
      return image.snapshots.revert(op.name);
    case 'snapshotDelete':
      return image.snapshots.delete(op.name);
    case 'flush':
      return image.flush();
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/**
 * One op's outcome from the engine (what every engine driver's `apply` answers):
 * ok, a refusal of a kind the model knows, or an ImplementationError naming
 * `driverName` for anything else the engine threw.
 */
export async function engineOutcome(driverName: string, op: Op, run: () => Promise<void>): Promise<Outcome> {
  try {
    await run();
    return okOutcome;
  } catch (error) {
    if (error instanceof Qcow2Error && isOpErrorKind(error.code)) return refused(error.code, error.message);
    throw implementationError(driverName, formatOp(op), error);
  }
}

/** A guest read from the engine; whatever it throws is an ImplementationError naming `driverName`. */
export async function engineRead(driverName: string, image: Qcow2Image, offset: number, length: number): Promise<Uint8Array> {
  try {
    return await image.read(offset, length);
  } catch (error) {
    throw implementationError(driverName, `read 0x${offset.toString(16)} 0x${length.toString(16)}`, error);
  }
}

/** Flushes the engine (before the image file is sampled); whatever it throws is an ImplementationError naming `driverName`. */
export async function engineFlush(driverName: string, image: Qcow2Image): Promise<void> {
  try {
    await image.flush();
  } catch (error) {
    throw implementationError(driverName, 'flush', error);
  }
}

/** The engine's map and info; whatever it throws is an ImplementationError naming `driverName`. */
export async function engineReports(driverName: string, image: Qcow2Image): Promise<EngineReports> {
  try {
    return { map: await image.map(), info: await image.info() };
  } catch (error) {
    throw implementationError(driverName, 'map/info', error);
  }
}

/** Where the image lives once it has a backing chain: a file in its own directory, with its backing files. */
interface ChainHome {
  readonly tmp: DirectoryResult;
  readonly path: string;
}

class EngineDriver implements ImageDriver {
  readonly name = 'ts engine (MemoryFile)';
  private closed = false;
  private home: ChainHome | undefined;
  private chain: ChainFiles = noChain;

  constructor(
    private file: BlockFile,
    private image: Qcow2Image,
  ) {}

  apply(op: Op): Promise<Outcome> {
    return engineOutcome(this.name, op, () => this.applyUnchecked(op));
  }

  private async applyUnchecked(op: Op): Promise<void> {
    switch (op.kind) {
      case 'reopen':
        return this.reopen();
      case 'createOverlay':
        return this.pushOverlay(op);
      case 'rebase': {
        // the layer `depth` down, by the name the chain files give it
        const target = backingAt(this.chain, op.depth);
        await this.image.rebase({ backingFile: target?.name ?? null, ...(target === undefined ? {} : { backingFormat: target.format }), unsafe: op.unsafe });
        this.chain = chainAfter(this.chain, op);
        return;
      }
      case 'commit':
        return this.image.commit();
      default:
        return applyEngineOp(this.image, op);
    }
  }

  /** Close (flush, clear the dirty bit) and open the same bytes again, read-write. */
  private async reopen(): Promise<void> {
    await this.image.close();
    if (this.home !== undefined) {
      this.image = await Qcow2Image.openFile(this.home.path);
      return;
    }
    this.file = new MemoryFile(await this.memoryBytes());
    this.image = await Qcow2Image.open(this.file);
  }

  private memoryBytes(): Promise<Uint8Array> {
    if (!(this.file instanceof MemoryFile)) throw new Error('the image is a file of a chain, not in memory');
    return Promise.resolve(this.file.bytes());
  }

  /**
   * createOverlay: the image becomes the backing file next to a new empty
   * image (written by the engine: its qcow2 file as it is, or its guest bytes
   * as a raw file), created by the engine with -b and -F.
   */
  private async pushOverlay(op: CreateOverlayOp): Promise<void> {
    this.home ??= await this.moveToFile();
    const file = overlayBackingFile(this.chain, op);
    const raw = file.format === 'raw' ? await this.image.read(0, this.image.virtualSize) : new Uint8Array();
    await this.image.close();
    await moveToBacking(this.home.path, file, (target) => writeFile(target, raw));
    this.image = await Qcow2Image.createFile(this.home.path, { ...createOptionsFor(op.options), backingFile: file.name, backingFormat: file.format });
    this.chain = chainAfter(this.chain, op);
  }

  /** The in-memory image, closed and written to a file of a fresh directory, and opened from there. */
  private async moveToFile(): Promise<ChainHome> {
    await this.image.close();
    const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-engine-chain-' });
    const path = join(tmp.path, 'image.qcow2');
    await writeFile(path, await this.memoryBytes());
    this.image = await Qcow2Image.openFile(path);
    return { tmp, path };
  }

  /** The backing files next to the image, nearest first. */
  backingChain(): readonly ChainFile[] {
    return this.chain.backings;
  }

  backingFileBytes(): Promise<readonly Uint8Array[]> {
    return this.home === undefined ? Promise.resolve([]) : readBackingFiles(this.home.path, this.chain);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return engineRead(this.name, this.image, offset, length);
  }

  async imageBytes(): Promise<Uint8Array> {
    await engineFlush(this.name, this.image);
    return this.home === undefined ? this.memoryBytes() : new Uint8Array(await readFile(this.home.path));
  }

  async fileLength(): Promise<number> {
    return this.home === undefined ? this.file.length() : (await stat(this.home.path)).size;
  }

  async reports(): Promise<EngineReports> {
    const reports = await engineReports(this.name, this.image);
    try {
      return { ...reports, backingInfo: await this.backingInfo() };
    } catch (error) {
      throw implementationError(this.name, 'info --backing-chain', error);
    }
  }

  /** The info of each backing file, opened alone and read-only (qemu-img info --backing-chain); undefined for a raw one. */
  private async backingInfo(): Promise<(ImageInfo | undefined)[]> {
    const home = this.home;
    if (home === undefined) return [];
    const infos: (ImageInfo | undefined)[] = [];
    for (const file of this.chain.backings) {
      if (file.format === 'raw') {
        infos.push(undefined);
        continue;
      }
      const layer = await Qcow2Image.openFile(chainFilePath(home.path, file), { readOnly: true, backing: false });
      try {
        infos.push(await layer.info());
      } finally {
        await layer.close();
      }
    }
    return infos;
  }

  /** The image, and its backing files next to it under their names, so that the copy is a working chain. */
  async writeTo(path: string): Promise<void> {
    await writeFile(path, await this.imageBytes());
    if (this.home === undefined) return;
    await copyBackingFiles(this.home.path, path, this.chain);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.image.close();
    } finally {
      await this.home?.tmp.cleanup();
    }
  }
}

/** A fresh image with these options, created by the engine in memory. */
export async function createEngineDriver(options: ImageOptions): Promise<ReportingDriver> {
  const file = new MemoryFile();
  try {
    const image = await Qcow2Image.create(file, createOptionsFor(options));
    return new EngineDriver(file, image);
  } catch (error) {
    throw implementationError('ts engine (MemoryFile)', 'create', error);
  }
}
