// The cross-implementation driver of the `handoff` property: one image file on
// disk that changes hands between our engine and QEMU. Every `reopen` step of
// the sequence is a handoff — the holder closes the image cleanly and the other
// program opens it — so the handoff points are drawn from the seed with the
// sequence and shrink with it: a counterexample's `reopen` lines are exactly
// where the file changed hands. Creating the image is a handoff too: one
// program creates it (drawn from the image options, themselves drawn from the
// seed) and the other opens it for the first operation.
//
// Backing chains pass too: createOverlay, rebase and commit run by whichever
// program holds the image, on chain files laid out as chain-files.ts does
// (relative names next to the image), and the other program opens the whole
// chain at the next handoff, resolving those names as QEMU does.
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { formatOp, type ImageOptions, type Op, type Outcome } from '../../model/index.js';
import { createConstraints, QemuMissingError, qemuImgCreate } from '../../oracle/index.js';
import { implementationError, okOutcome, refused, type ImageDriver } from '../driver.js';
import { chainAfter, copyBackingFiles, noChain, readBackingFiles, type ChainFile, type ChainFiles } from './chain-files.js';
import { createOptionsFor } from './engine.js';
import { EngineHolder, openEngineImage, QemuHolder, type Holder, type HolderSide } from './handoff-holders.js';
import { ImageFileDriver } from './image-file.js';

/** The program that creates the image (the other one opens it): a function of the options so that a replay starts the same way. */
export function imageCreator(options: ImageOptions): HolderSide {
  return (options.virtualSize / 512 + options.clusterBits + options.refcountBits) % 2 === 0 ? 'ts' : 'qemu';
}

const otherSide = (side: HolderSide): HolderSide => (side === 'ts' ? 'qemu' : 'ts');

class HandoffDriver extends ImageFileDriver implements ImageDriver {
  private chain: ChainFiles = noChain;

  constructor(
    private readonly tmp: DirectoryResult,
    protected readonly path: string,
    /** The options of the image at `path` (a createOverlay changes them). */
    private options: ImageOptions,
    private holder: Holder,
  ) {
    super();
  }

  get name(): string {
    return `handoff (image file passed between the ts engine and qemu-io at each reopen; now held by ${this.holder.side})`;
  }

  async apply(op: Op): Promise<Outcome> {
    if (op.kind === 'reopen') {
      await this.handOver();
      return okOutcome;
    }
    try {
      await this.holder.apply(op, this.chain);
      if (op.kind === 'createOverlay') this.options = op.options;
      if (op.kind === 'createOverlay' || op.kind === 'rebase') this.chain = chainAfter(this.chain, op);
      return okOutcome;
    } catch (error) {
      const kind = this.holder.refusal(op, error);
      if (kind !== undefined) return refused(kind, error instanceof Error ? error.message : String(error));
      throw implementationError(this.name, formatOp(op), error);
    }
  }

  /** Close with the holder, open with the other program. */
  private async handOver(): Promise<void> {
    const from = this.holder.side;
    const to = otherSide(from);
    const what = `reopen (hand over ${from} -> ${to})`;
    let size: number;
    try {
      size = await this.holder.virtualSize();
      await this.holder.close();
    } catch (error) {
      throw implementationError(this.name, `${what}: close by ${from}`, error);
    }
    try {
      this.holder = await openHolder(to, this.path, size, this.options);
    } catch (error) {
      throw implementationError(this.name, `${what}: open by ${to}`, error);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    try {
      return await this.holder.read(offset, length);
    } catch (error) {
      throw implementationError(this.name, `read 0x${offset.toString(16)} 0x${length.toString(16)}`, error);
    }
  }

  protected async settle(): Promise<void> {
    try {
      await this.holder.settle();
    } catch (error) {
      throw implementationError(this.name, 'flush', error);
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

  async close(): Promise<void> {
    try {
      await this.holder.close();
    } finally {
      await this.tmp.cleanup();
    }
  }
}

function openHolder(side: HolderSide, path: string, size: number, options: ImageOptions): Promise<Holder> {
  return side === 'ts' ? EngineHolder.open(path) : QemuHolder.open(path, size, options);
}

/** A fresh image in a temp dir, created by the program `imageCreator` picks and opened by the other. */
export async function createHandoffDriver(options: ImageOptions): Promise<ImageDriver> {
  const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-handoff-' });
  const path = join(tmp.path, 'image.qcow2');
  const creator = imageCreator(options);
  const opener = otherSide(creator);
  let step = `create by ${creator}`;
  try {
    if (creator === 'ts') {
      await (await openEngineImage(path, createOptionsFor(options))).close();
    } else {
      await qemuImgCreate(path, createConstraints(options));
    }
    step = `open by ${opener} of the image ${creator} created`;
    return new HandoffDriver(tmp, path, options, await openHolder(opener, path, options.virtualSize, options));
  } catch (error) {
    await tmp.cleanup();
    if (error instanceof QemuMissingError) throw error;
    throw implementationError('handoff', step, error);
  }
}
