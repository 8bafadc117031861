import { exitCodes, type ExitCode } from './exit-codes.js';

/**
 * The one place that turns an error into a line on stderr and an exit code.
 * Users get `qcow2-verify: <message>`, never a stack trace; set
 * QCOW2_VERIFY_DEBUG=1 to see the stack of an unexpected error.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = exitCodes.failed,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A bad flag or argument: one line, exit code 2. */
export function usageError(message: string): never {
  throw new CliError(message, exitCodes.usage);
}

export function fatal(message: string, exitCode: ExitCode = exitCodes.failed): never {
  throw new CliError(message, exitCode);
}

export function reportAndExit(error: unknown): never {
  if (error instanceof CliError) {
    process.stderr.write(`qcow2-verify: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  process.stderr.write(`qcow2-verify: ${message}\n`);
  if (process.env.QCOW2_VERIFY_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exit(exitCodes.failed);
}
