import type { Command } from 'commander';
import { registerAdapter } from './adapter-command.js';
import { registerCheck } from './check-command.js';
import { register as registerConvert } from './convert.js';
import { register as registerCreate } from './create.js';
import { registerFuzz } from './fuzz-command.js';
import { registerGate } from './gate-command.js';
import { register as registerInfo } from './info.js';
import { register as registerIo } from './io.js';
import { register as registerMap } from './map.js';
import { register as registerRebaseAndCommit } from './rebase.js';
import { registerReplay } from './replay-command.js';
import { register as registerSnapshot } from './snapshot.js';

/**
 * Each subcommand lives in its own file and registers itself here. Registration
 * must stay cheap (every start, --help included, runs all of it): a command whose
 * implementation pulls in heavy modules (the property suite, the corpus, QEMU
 * oracles) registers from a light *-command.ts file and imports the rest with
 * `await import()` in its action.
 */
export type RegisterCommand = (program: Command) => void;

export const commands: readonly RegisterCommand[] = [
  registerCheck,
  registerGate,
  registerFuzz,
  registerReplay,
  registerCreate,
  registerIo,
  registerSnapshot,
  registerConvert,
  registerInfo,
  registerMap,
  registerRebaseAndCommit,
  registerAdapter,
];
