// Our engine (impl/) on an in-memory file: fast, and the bytes are at hand for
// decodeImage after every operation. The file is written out only when QEMU must
// judge it (writeTo).
import { writeFile } from 'node:fs/promises';
import { MemoryFile, Qcow2Error, Qcow2Image, type CreateOptions } from '../../impl/index.js';
import { compressedWriteBytes, formatOp, writeBytes, type ImageOptions, type Op, type Outcome } from '../../model/index.js';
import { implementationError, isOpErrorKind, okOutcome, refused, type EngineReports, type ImageDriver, type ReportingDriver } from '../driver.js';

export function createOptionsFor(options: ImageOptions): CreateOptions {
  return {
    size: options.virtualSize,
    clusterSize: 2 ** options.clusterBits,
    refcountBits: options.refcountBits,
    compat: options.version === 3 ? '1.1' : '0.10',
    lazyRefcounts: options.lazyRefcounts,
    compressionType: options.compressionType ?? 'zlib',
  };
}

/** Every op but reopen, which each caller handles its own way. */
export type EngineOp = Exclude<Op, { kind: 'reopen' }>;

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

class EngineDriver implements ImageDriver {
  readonly name = 'ts engine (MemoryFile)';
  private closed = false;

  constructor(
    private file: MemoryFile,
    private image: Qcow2Image,
  ) {}

  async apply(op: Op): Promise<Outcome> {
    try {
      await this.applyUnchecked(op);
      return okOutcome;
    } catch (error) {
      if (error instanceof Qcow2Error && isOpErrorKind(error.code)) return refused(error.code, error.message);
      throw implementationError(this.name, formatOp(op), error);
    }
  }

  private async applyUnchecked(op: Op): Promise<void> {
    if (op.kind === 'reopen') return this.reopen();
    return applyEngineOp(this.image, op);
  }

  /** Close (flush, clear the dirty bit) and open the same bytes again, read-write. */
  private async reopen(): Promise<void> {
    await this.image.close();
    this.file = new MemoryFile(this.file.bytes());
    this.image = await Qcow2Image.open(this.file);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    try {
      return await this.image.read(offset, length);
    } catch (error) {
      throw implementationError(this.name, `read 0x${offset.toString(16)} 0x${length.toString(16)}`, error);
    }
  }

  async imageBytes(): Promise<Uint8Array> {
    try {
      await this.image.flush();
    } catch (error) {
      throw implementationError(this.name, 'flush', error);
    }
    return this.file.bytes();
  }

  fileLength(): Promise<number> {
    return this.file.length();
  }

  async reports(): Promise<EngineReports> {
    try {
      return { map: await this.image.map(), info: await this.image.info() };
    } catch (error) {
      throw implementationError(this.name, 'map/info', error);
    }
  }

  async writeTo(path: string): Promise<void> {
    await writeFile(path, await this.imageBytes());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.image.close();
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
