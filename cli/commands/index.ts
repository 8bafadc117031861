import type { Command } from 'commander';
import { registerCheck } from './check.js';
import { register as registerConvert } from './convert.js';
import { register as registerCreate } from './create.js';
import { registerFuzz } from './fuzz.js';
import { registerGate } from './gate.js';
import { register as registerInfo } from './info.js';
import { register as registerIo } from './io.js';
import { register as registerMap } from './map.js';
import { registerReplay } from './replay.js';
import { register as registerSnapshot } from './snapshot.js';

/** Each subcommand lives in its own file and registers itself here. */
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
];
