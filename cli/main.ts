#!/usr/bin/env node
import { CommanderError } from 'commander';
import { exitCodes } from './exit-codes.js';
import { reportAndExit } from './fatal.js';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // commander already printed its one line; help and version exit 0.
    process.exit(error.exitCode === 0 ? exitCodes.ok : exitCodes.usage);
  }
  reportAndExit(error);
}
