// One arbitrary per command kind; the swarm weights pick among them.
import fc from 'fast-check';
import type { CommandKind } from '../arbitraries/swarm.js';
import type { StepCommand } from './command.js';
import { commitCommand } from './commit.js';
import { createOverlayCommand } from './create-overlay.js';
import { discardCommand } from './discard.js';
import { rebaseCommand } from './rebase.js';
import { flushCommand } from './flush.js';
import { readCommand } from './read.js';
import { reopenCommand } from './reopen.js';
import { resizeCommand } from './resize.js';
import { snapshotCreateCommand } from './snapshot-create.js';
import { snapshotDeleteCommand } from './snapshot-delete.js';
import { snapshotRevertCommand } from './snapshot-revert.js';
import { writeCompressedCommand } from './write-compressed.js';
import { writeZeroesCommand } from './write-zeroes.js';
import { writeCommand } from './write.js';

export { StepCommand, FixedCommand, type ModelBox } from './command.js';

export function commandArbitrary(kind: CommandKind): fc.Arbitrary<StepCommand> {
  switch (kind) {
    case 'write':
      return writeCommand();
    case 'writeCompressed':
      return writeCompressedCommand();
    case 'writeZeroes':
      return writeZeroesCommand();
    case 'discard':
      return discardCommand();
    case 'resize':
      return resizeCommand();
    case 'snapshotCreate':
      return snapshotCreateCommand();
    case 'snapshotRevert':
      return snapshotRevertCommand();
    case 'snapshotDelete':
      return snapshotDeleteCommand();
    case 'flush':
      return flushCommand();
    case 'reopen':
      return reopenCommand();
    case 'read':
      return readCommand();
    default: {
      const never: never = kind;
      throw new Error(`unknown command kind ${String(never)}`);
    }
  }
}

/** One backing-chain command: mostly new overlays (a chain needs them first), rebases and commits. */
export function chainCommandArbitrary(): fc.Arbitrary<StepCommand> {
  const weighted = (arbitrary: fc.Arbitrary<StepCommand>, weight: number) => ({ arbitrary, weight });
  return fc.oneof(weighted(createOverlayCommand(), 4), weighted(rebaseCommand(), 2), weighted(commitCommand(), 2));
}
