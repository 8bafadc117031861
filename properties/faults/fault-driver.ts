// Our engine on a FaultFile (impl/io/fault-file.ts): the driver of the
// crashConsistency property. Besides the ImageDriver calls it can arm an I/O
// error for the next operation and lose power: the file becomes a crash state
// drawn from a seed and the engine opens it again, as after a reboot.
import { writeFile } from 'node:fs/promises';
import { FaultFile, Qcow2Image, type FaultSpec } from '../../impl/index.js';
import { readCompressedCluster } from '../../impl/compressed.js';
import { geometry } from '../../impl/geometry.js';
import type { DecodedImage, ImageOptions, Op, Outcome } from '../../model/index.js';
import { implementationError, type EngineReports, type ImageDriver, type ReportingDriver } from '../driver.js';
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

  constructor(
    private file: FaultFile,
    private image: Qcow2Image,
  ) {}

  apply(op: Op): Promise<Outcome> {
    return engineOutcome(this.name, op, async () => {
      if (op.kind === 'reopen') await this.reopen();
      else if (isEngineOp(op)) await applyEngineOp(this.image, op);
      // crash sequences draw no backing-chain ops: a chain is more than the one faulty file
      else throw new Error(`${op.kind} is not run on a fault-injecting file`);
    });
  }

  private async reopen(): Promise<void> {
    await this.image.close();
    this.file = new FaultFile(this.file.bytes());
    this.image = await Qcow2Image.open(this.file);
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
    // The engine before the crash is dropped without a close: a close would flush.
    this.file = new FaultFile(bytes);
    try {
      this.image = await Qcow2Image.open(this.file);
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
    const image = await Qcow2Image.open(copy);
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

  async writeTo(path: string): Promise<void> {
    await writeFile(path, await this.imageBytes());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.file.disarm();
    await this.image.close();
  }
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
