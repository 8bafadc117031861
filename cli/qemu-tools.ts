// Which QEMU a command runs, applied and reported. The --qemu-img / --qemu-io
// flags (qemu-tool-options.ts) set QEMU_IMG and QEMU_IO, which
// oracle/tool-path.ts reads: one place decides which binary runs, and the
// gate's worker threads and every child process inherit the setting.
import { resolve } from 'node:path';
import { exitCodes } from './exit-codes.js';
import { CliError } from './fatal.js';
import type { RawQemuToolOptions } from './qemu-tool-options.js';
import { formatQemuVersion, qemuVersion } from '../oracle/version.js';
import { QemuMissingError } from '../oracle/errors.js';
import { qemuToolVariables } from '../oracle/tool-path.js';

/** Sets QEMU_IMG / QEMU_IO from the flags (a flag wins over the variable), as absolute paths. */
export function applyQemuToolOptions(raw: RawQemuToolOptions): void {
  if (raw.qemuImg !== undefined) process.env[qemuToolVariables['qemu-img']] = resolve(raw.qemuImg);
  if (raw.qemuIo !== undefined) process.env[qemuToolVariables['qemu-io']] = resolve(raw.qemuIo);
}

/**
 * The report's `qemu:` line, naming the binaries that run and their versions.
 * A configured binary that is missing or not QEMU stops the command (exit 2)
 * before anything runs; QEMU merely absent from PATH is left to each property
 * to report (some run without it).
 */
export async function qemuReportLine(): Promise<string> {
  try {
    return `qemu: ${formatQemuVersion(await qemuVersion())}`;
  } catch (error) {
    if (!(error instanceof QemuMissingError)) throw error;
    if (error.problem !== undefined) throw new CliError(error.message, exitCodes.cannotRun);
    return `qemu: unavailable (${error.message})`;
  }
}
