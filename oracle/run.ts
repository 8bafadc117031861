// Running a QEMU tool once: the one place that spawns qemu-img (tool-path.ts
// decides which binary), so that a missing binary always becomes
// QemuMissingError and a failed spawn never escapes as a raw ENOENT. Exit codes are returned, never thrown: each caller decides which
// codes are verdicts (check, compare) and which are failures.
import type { QemuTool } from './errors.js';
import { findTool } from './tool-path.js';
import { runInToolShell } from './tool-shell.js';

export interface ToolRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The shell's statuses from here on are not exit codes: 126 cannot execute, 127 not found, 128 + n killed by signal n. */
const shellStatusMin = 126;

/**
 * Run `tool args` to completion; stdin is closed, output is collected as text.
 * The tool is started by this process's tool shell (tool-shell.ts), not
 * forked from Node.
 */
export async function runTool(tool: QemuTool, args: readonly string[]): Promise<ToolRun> {
  const binary = await findTool(tool);
  const run = await runInToolShell(binary, args);
  if (run.status >= shellStatusMin) {
    // Killed by a signal or could not be executed: not a verdict.
    throw new Error(`${tool} ${args.join(' ')} did not exit normally (shell status ${run.status}): ${run.stderr.trim()}`, { cause: run });
  }
  return { exitCode: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** qemu-img's messages without its "qemu-img: " prefixes, one line per message. */
export function stripToolPrefix(tool: QemuTool, text: string): string {
  return text
    .split('\n')
    .map((line) => (line.startsWith(`${tool}: `) ? line.slice(tool.length + 2) : line))
    .join('\n')
    .trim();
}

/** qemu-img/qemu-io could not take the image lock because another process has it open. */
export function isLockConflict(stderr: string): boolean {
  return /Failed to get (?:shared )?"?\w+"? lock/.test(stderr);
}
