// The model's entry points: an initial state and one pure step per operation.
import { discard, ok, resize, write, writeCompressed, writeZeroes, type StepResult } from './guest-ops.js';
import { snapshotCreate, snapshotDelete, snapshotRevert } from './snapshot-ops.js';
import { geometry, type ModelState } from './state.js';
import type { ImageOptions, Op } from './ops.js';

/** Limits on options the model accepts (qemu-img create's own limits, digest §10). */
export const clusterBitsMin = 9;
export const clusterBitsMax = 21;
export const refcountBitsAllowed: readonly number[] = [1, 2, 4, 8, 16, 32, 64];
/** QCOW_MAX_L1_SIZE: 32 MiB of 8-byte entries bounds the virtual size. */
export const l1EntriesMax = (32 * 1024 * 1024) / 8;

/** Throws RangeError for options qemu-img create would refuse. */
export function validateOptions(options: ImageOptions): void {
  const { version, clusterBits, refcountBits, lazyRefcounts, virtualSize } = options;
  const fail = (what: string) => {
    throw new RangeError(`invalid image options: ${what} (${JSON.stringify(options)})`);
  };
  if (version !== 2 && version !== 3) fail('version must be 2 or 3');
  if (!Number.isInteger(clusterBits) || clusterBits < clusterBitsMin || clusterBits > clusterBitsMax) {
    fail(`clusterBits must be ${clusterBitsMin}..${clusterBitsMax}`);
  }
  if (!refcountBitsAllowed.includes(refcountBits)) fail(`refcountBits must be one of ${refcountBitsAllowed.join(', ')}`);
  if (version === 2 && refcountBits !== 16) fail('version 2 has 16-bit refcounts');
  if (version === 2 && lazyRefcounts) fail('lazy refcounts need version 3');
  if (options.compressionType !== undefined && options.compressionType !== 'zlib' && options.compressionType !== 'zstd') fail('compressionType must be zlib or zstd');
  if (version === 2 && options.compressionType === 'zstd') fail('zstd compression needs version 3');
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0 || virtualSize % 512 !== 0) {
    fail('virtualSize must be a non-negative multiple of 512');
  }
  if (Math.ceil(virtualSize / geometry(options).l1Coverage) > l1EntriesMax) fail('virtualSize needs an L1 over 32 MiB');
}

export function initialState(options: ImageOptions): ModelState {
  validateOptions(options);
  return { options: { ...options }, active: [], snapshots: [], nextId: 1 };
}

export function step(state: ModelState, op: Op): StepResult {
  switch (op.kind) {
    case 'write':
      return write(state, op);
    case 'writeCompressed':
      return writeCompressed(state, op);
    case 'writeZeroes':
      return writeZeroes(state, op);
    case 'discard':
      return discard(state, op);
    case 'resize':
      return resize(state, op);
    case 'snapshotCreate':
      return snapshotCreate(state, op);
    case 'snapshotRevert':
      return snapshotRevert(state, op);
    case 'snapshotDelete':
      return snapshotDelete(state, op);
    case 'flush':
    case 'reopen':
      return { state, outcome: ok };
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}
