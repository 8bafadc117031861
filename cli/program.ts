import { Command } from 'commander';
import { commands } from './commands/index.js';

/** Builds the CLI without running it, so tests can parse argv in-process. */
export function buildProgram(): Command {
  const program = new Command('qcow2-verify')
    .description('Property-based verification suite and reference model for QCOW2 images')
    .showHelpAfterError(false)
    .configureOutput({ outputError: (text, write) => write(`qcow2-verify: ${text.replace(/^error: /, '')}`) })
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}
