import { stat } from 'node:fs/promises';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';

/**
 * Refuses to write `output` when it is one of `inputs` under any name: the
 * same path, `./x`, a symlink or a hard link. "Same" is the (device, inode)
 * pair of the file each name resolves to (fs.stat follows symlinks), never a
 * comparison of names. A missing output is a new file and matches nothing.
 * Throws a usage error (exit 2) naming both; other stat errors are left to
 * the open that follows, which reports them.
 */
export async function refuseOutputThatIsAnInput(command: string, output: string, inputs: readonly string[]): Promise<void> {
  const outputStat = await stat(output).catch(() => undefined);
  if (outputStat === undefined) return;
  for (const input of inputs) {
    const inputStat = await stat(input).catch(() => undefined);
    if (inputStat !== undefined && inputStat.dev === outputStat.dev && inputStat.ino === outputStat.ino) {
      throw new CliError(
        `${command}: output '${output}' is the input '${input}' (same file: device ${inputStat.dev}, inode ${inputStat.ino}); ` +
          'writing it would destroy the input',
        exitCodes.usage,
      );
    }
  }
}
