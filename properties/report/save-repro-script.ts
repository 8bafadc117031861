// Writes a counterexample's QEMU shell script (repro-script.ts) and its data
// files into one directory, for every command that reports a failure (gate,
// replay, fuzz), so each names a script the user can run as it is.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reproScript } from './repro-script.js';
import type { Counterexample } from './run-result.js';

/**
 * Creates `dir` (and its parents), writes `repro.sh` (mode 0755) and the data
 * files it reads there, and returns the script's path. `title` is the header
 * comment (see reproScript). Errors: the file system's.
 */
export async function saveReproScript(dir: string, c: Counterexample, title: readonly string[]): Promise<string> {
  const { script, files } = reproScript(c, title);
  await mkdir(dir, { recursive: true });
  for (const f of files) await writeFile(join(dir, f.name), f.bytes);
  const path = join(dir, 'repro.sh');
  await writeFile(path, script, { mode: 0o755 });
  return path;
}
