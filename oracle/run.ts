// Running a QEMU tool once: the one place that spawns qemu-img, so that a missing
// binary always becomes QemuMissingError and a failed spawn never escapes as a
// raw ENOENT. Exit codes are returned, never thrown: each caller decides which
// codes are verdicts (check, compare) and which are failures.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { QemuMissingError, type QemuTool } from './errors.js';
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

/** Binaries found, by tool and PATH (a test may change PATH). */
const foundTools = new Map<string, string>();

/**
 * The absolute path of `tool` on PATH, for spawns that go through a shell (the
 * tool shell, the qemu-io session), where a missing binary would otherwise
 * surface as exit 127.
 */
export async function findTool(tool: QemuTool): Promise<string> {
  const path = process.env.PATH ?? '';
  const key = `${tool}\0${path}`;
  const known = foundTools.get(key);
  if (known !== undefined) return known;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, tool);
    try {
      await access(candidate, constants.X_OK);
      foundTools.set(key, candidate);
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
