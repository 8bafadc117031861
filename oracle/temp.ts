// Temporary files for the oracle: every temp dir is removed when the work is done,
// whether it succeeded or threw, unless the caller asked to keep a failing image
// (then a copy goes to the caller's directory first, and its path is returned).
import { copyFile, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { withDir } from 'tmp-promise';

/** Run `fn` with a fresh private temp directory; the directory is always removed. */
export function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  return withDir(({ path }) => fn(path), { unsafeCleanup: true, prefix: 'qcow2-verify-' });
}

export interface KeepConstraints {
  /** Directory to copy a failing image into (created if missing). No copy when absent. */
  readonly keepOnFailure?: string;
}

/**
 * Copy `file` into `dir` under a name that does not clobber earlier keeps of the
 * same name; returns the kept path. Names are numbered, not timestamped, so a run
 * is reproducible.
 */
export async function keepFile(file: string, dir: string, name = basename(file)): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (let index = 0; ; index++) {
    const target = join(dir, index === 0 ? name : `${index}-${name}`);
    try {
      await copyFile(file, target, 1 /* COPYFILE_EXCL: never overwrite an earlier keep */);
      return target;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
