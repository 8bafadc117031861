// The model's entry points: an initial state and one pure step per operation.
import { discard, ok, resize, write, writeCompressed, writeZeroes, type StepResult } from './guest-ops.js';
import { commit, createOverlay, rebase } from './chain-ops.js';
import { snapshotCreate, snapshotDelete, snapshotRevert } from './snapshot-ops.js';
import type { ModelState } from './state.js';
import { validateOptions } from './options.js';
import type { ImageOptions, Op } from './ops.js';

export { clusterBitsMax, clusterBitsMin, l1EntriesMax, refcountBitsAllowed, validateOptions } from './options.js';

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
    case 'createOverlay':
      return createOverlay(state, op);
    case 'rebase':
      return rebase(state, op);
    case 'commit':
      return commit(state, op);
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}
