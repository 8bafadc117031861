// Running a QEMU tool once: the one place that spawns qemu-img, so that a missing
// binary always becomes QemuMissingError and a failed spawn never escapes as a
// raw ENOENT. Exit codes are returned, never thrown: each caller decides which
// codes are verdicts (check, compare) and which are failures.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { QemuMissingError, type QemuTool } from './errors.js';

export interface ToolRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run `tool args` to completion; stdin is closed, output is collected as text. */
export async function runTool(tool: QemuTool, args: readonly string[]): Promise<ToolRun> {
  const result = await execa(tool, args, { reject: false, stdin: 'ignore', stripFinalNewline: false });
  if (result.code === 'ENOENT') throw new QemuMissingError(tool);
  if (result.exitCode === undefined) {
    // Killed by a signal or failed to spawn for another reason: not a verdict.
    throw new Error(`${tool} ${args.join(' ')} did not exit normally: ${result.originalMessage ?? result.message}`, {
      cause: result,
    });
  }
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The absolute path of `tool` on PATH, for spawns that go through a shell (the
 * qemu-io session), where a missing binary would otherwise surface as exit 127.
 */
export async function findTool(tool: QemuTool): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, tool);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  throw new QemuMissingError(tool);
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
