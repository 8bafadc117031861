#!/usr/bin/env node
import { CommanderError } from 'commander';
import { exitCodes } from './exit-codes.js';
import { reportAndExit } from './fatal.js';
import { buildProgram } from './program.js';

// `qcow2-verify replay … | head` closes our stdout early: that is the reader's
// choice, not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(exitCodes.ok);
    throw error;
  });
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // commander already printed its one line; help and version exit 0.
    process.exit(error.exitCode === 0 ? exitCodes.ok : exitCodes.usage);
  }
  reportAndExit(error);
}
