// Drive the engine (on a MemoryFile) and the model with the same ops; after every
// op the engine's outcome, its reads and its flushed on-disk structure must match
// the model (equivalence up to host offsets) and the model's checker must say clean.
import { expect } from 'vitest';
import {
  abstractImage, bufferReader, checkImage, compressedWriteBytes, decodeImage, equivalent, initialState, read as modelRead, step, writeBytes,
  formatOp, type ImageOptions, type ModelState, type Op,
} from '../../model/index.js';
import { MemoryFile, Qcow2Error, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { firstDifference } from './qemu-helpers.js';

const fixedClock = () => ({ sec: 1_700_000_000, nsec: 0 });

/** Cache sizes for the engine (tiny caches force evictions in the middle of operations). */
export interface EngineCaches {
  l2CacheEntries?: number;
  refcountCacheEntries?: number;
}

export async function runAgainstModel(
  options: ImageOptions,
  ops: readonly Op[],
  caches: EngineCaches = {},
): Promise<{ file: MemoryFile; image: Qcow2Image; state: ModelState }> {
  const openOptions = { clock: fixedClock, ...caches };
  const file = new MemoryFile();
  let image = await Qcow2Image.create(keepOpen(file), {
    size: options.virtualSize,
    clusterSize: 2 ** options.clusterBits,
    refcountBits: options.refcountBits,
    compat: options.version === 2 ? '0.10' : '1.1',
    lazyRefcounts: options.lazyRefcounts,
  }, openOptions);
  let state = initialState(options);
  const done: string[] = [];
  for (const op of ops) {
    done.push(formatOp(op));
    const where = `after ${done.join('; ')}`;
    const result = step(state, op);
    state = result.state;
    let error: string | undefined;
    try {
      image = await apply(image, file, op, openOptions);
    } catch (e) {
      if (!(e instanceof Qcow2Error)) throw e;
      error = e.code;
    }
    expect(error, where).toBe(result.outcome.ok ? undefined : result.outcome.error);
    const size = state.options.virtualSize;
    expect(image.virtualSize, where).toBe(size);
    expect(firstDifference(await image.read(0, size), modelRead(state, 0, size)), where).toBe(-1);
    await image.flush();
    const bytes = file.bytes();
    const eq = equivalent(state, abstractImage(decodeImage(bufferReader(bytes))));
    expect(eq.ok ? 'ok' : eq.message, where).toBe('ok');
    const report = checkImage(bufferReader(bytes));
    expect(report.verdict === 'clean' ? 'clean' : `${report.verdict}: ${report.messages.join('; ')}`, where).toBe('clean');
  }
  return { file, image, state };
}

async function apply(image: Qcow2Image, file: MemoryFile, op: Op, openOptions: EngineCaches & { clock: typeof fixedClock }): Promise<Qcow2Image> {
  switch (op.kind) {
    case 'write':
      await image.write(op.offset, writeBytes(op));
      return image;
    case 'writeZeroes':
      await image.writeZeroes(op.offset, op.length, { unmap: op.unmap });
      return image;
    case 'discard':
      await image.discard(op.offset, op.length);
      return image;
    case 'resize':
      await image.resize(op.size);
      return image;
    case 'snapshotCreate':
      await image.snapshots.create(op.name);
      return image;
    case 'snapshotRevert':
      await image.snapshots.revert(op.name);
      return image;
    case 'snapshotDelete':
      await image.snapshots.delete(op.name);
      return image;
    case 'writeCompressed':
      await image.writeCompressed(op.offset, compressedWriteBytes(op));
      return image;
    case 'flush':
      await image.flush();
      return image;
    case 'reopen':
      await image.close();
      return Qcow2Image.open(keepOpen(file), openOptions);
    case 'createOverlay':
    case 'rebase':
    case 'commit':
      throw new Error(`the engine has no backing chains yet: ${op.kind}`);
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** The same MemoryFile across reopens: closing the image must not close it. */
export function keepOpen(file: MemoryFile): BlockFile {
  return {
    pread: (o, l) => file.pread(o, l),
    pwrite: (o, d) => file.pwrite(o, d),
    flush: () => file.flush(),
    truncate: (l) => file.truncate(l),
    length: () => file.length(),
    close: async () => {},
  };
}
