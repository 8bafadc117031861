import type { Command } from 'commander';
import { registerGate } from './gate.js';

/** Each subcommand lives in its own file and registers itself here. */
export type RegisterCommand = (program: Command) => void;

export const commands: readonly RegisterCommand[] = [registerGate];
