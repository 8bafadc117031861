import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { exitCodes } from '../../cli/exit-codes.js';
import { CliError } from '../../cli/fatal.js';
import { buildProgram } from '../../cli/program.js';

export interface CliRun {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

function captureAll(command: Command, sink: { out: string[]; err: string[] }): void {
  command.configureOutput({
    writeOut: (text) => sink.out.push(text),
    writeErr: (text) => sink.err.push(text),
  });
  for (const sub of command.commands) captureAll(sub, sink);
}

/**
 * Runs `qcow2-verify ARGS` in-process exactly as cli/main.ts does (same exit
 * code mapping, same one-line error), capturing stdout and stderr. An error
 * that main.ts would report as unexpected is rethrown, so a test sees it.
 */
export async function runCli(args: readonly string[]): Promise<CliRun> {
  const program = buildProgram();
  const sink = { out: [] as string[], err: [] as string[] };
  captureAll(program, sink);
  let exitCode: number = exitCodes.ok;
  try {
    await program.parseAsync(['node', 'qcow2-verify', ...args]);
  } catch (error) {
    if (error instanceof CommanderError) {
      exitCode = error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    } else if (error instanceof CliError) {
      sink.err.push(`qcow2-verify: ${error.message}\n`);
      exitCode = error.exitCode;
    } else {
      throw error;
    }
  }
  return { stdout: sink.out.join(''), stderr: sink.err.join(''), exitCode };
}
