// Which qemu-img and qemu-io the oracle runs: the one place that decides, for
// qemu-img runs (run.ts), qemu-io sessions and version reports alike.
//
// A QEMU developer gates their own build by pointing QEMU_IMG and QEMU_IO (or
// the CLI's --qemu-img / --qemu-io, which set them, so that worker threads and
// child processes see the same binaries) at it; otherwise the tool is looked
// up on PATH. Either way the binary is accepted only once its `--version`
// names the tool ("qemu-img version 7.2.22 (Debian …)"), so a wrong path is a
// clear error before any verdict, never a stream of unreadable output.
import { access, constants } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { QemuMissingError, type QemuTool } from './errors.js';
import { runInToolShell } from './tool-shell.js';

/** The environment variable that names each tool's binary. */
export const qemuToolVariables: Readonly<Record<QemuTool, string>> = { 'qemu-img': 'QEMU_IMG', 'qemu-io': 'QEMU_IO' };

export interface ResolvedTool {
  readonly tool: QemuTool;
  /** Absolute path of the binary that runs. */
  readonly path: string;
  /** What follows "<tool> version " on its `--version` line, e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
  readonly version: string;
  /** The environment variable it came from, or undefined when found on PATH. */
  readonly variable: string | undefined;
}

/** Resolved tools by tool, variable value and PATH (a test or a flag may change either); failures are not kept. */
const resolved = new Map<string, Promise<ResolvedTool>>();

/** The binary `tool` runs as (absolute), checked to be that QEMU tool; throws QemuMissingError naming what is wrong. */
export async function findTool(tool: QemuTool): Promise<string> {
  return (await resolveTool(tool)).path;
}

/**
 * Where `tool` comes from (its variable, else PATH), checked once per setting:
 * the file is executable and its `--version` first line is "<tool> version X".
 * Throws QemuMissingError: not on PATH, the configured file is not an
 * executable, or it is not that tool.
 */
export function resolveTool(tool: QemuTool): Promise<ResolvedTool> {
  const variable = qemuToolVariables[tool];
  const configured = process.env[variable] ?? '';
  const key = `${tool}\0${configured}\0${process.env.PATH ?? ''}`;
  let known = resolved.get(key);
  if (known === undefined) {
    known = (configured === '' ? onPath(tool) : fromVariable(tool, variable, configured)).then((path) => checked(tool, path, configured === '' ? undefined : variable));
    known.catch(() => resolved.delete(key));
    resolved.set(key, known);
  }
  return known;
}

async function fromVariable(tool: QemuTool, variable: string, value: string): Promise<string> {
  const path = resolve(value);
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new QemuMissingError(tool, { variable, path, reason: 'no executable file there' });
  }
  return path;
}

async function onPath(tool: QemuTool): Promise<string> {
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

/** Longest part of the first `--version` line quoted in an error. */
const quotedOutputMax = 200;

async function checked(tool: QemuTool, path: string, variable: string | undefined): Promise<ResolvedTool> {
  const run = await runInToolShell(path, ['--version']);
  const firstLine = run.stdout.split('\n')[0] ?? '';
  const match = new RegExp(`^${tool} version (\\S.*)$`).exec(firstLine.trim());
  if (run.status !== 0 || match?.[1] === undefined) {
    const output = (run.stdout + run.stderr).trim().split('\n')[0]?.slice(0, quotedOutputMax) ?? '';
    const reason = `not ${tool}: \`${path} --version\` exited ${run.status} and printed ${JSON.stringify(output)}, not "${tool} version …"`;
    throw new QemuMissingError(tool, { ...(variable === undefined ? {} : { variable }), path, reason });
  }
  return { tool, path, version: match[1], variable };
}
