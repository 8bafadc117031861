import type { Command } from 'commander';

/** Where a command prints: commander's configured output, so tests capture it in-process. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

/**
 * Commands print through commander's output configuration (process.stdout and
 * process.stderr unless a test replaced them with configureOutput), never
 * through console.log, so an in-process run can capture every byte.
 */
export function outputOf(command: Command): Output {
  const config = command.configureOutput();
  const writeOut = config.writeOut ?? ((text: string) => process.stdout.write(text));
  const writeErr = config.writeErr ?? ((text: string) => process.stderr.write(text));
  return {
    out: (line) => writeOut(`${line}\n`),
    err: (line) => writeErr(`${line}\n`),
  };
}
