import type { Command } from 'commander';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import type { IoCommand } from '../io-commands/command.js';
import { checkForceShare, dropBitmapsFlag, dropBitmapsHelp, forceShareFlags, forceShareHelp, openImage } from '../io-commands/open-image.js';
import { outputOf } from '../io-commands/output.js';
import { parseIoCommand } from '../io-commands/parse.js';
import { runIoCommands } from '../io-commands/run.js';

/**
 * The script's lines: every -c, or (without -c) one command per line on
 * stdin, blank lines and `#` comments skipped. All are parsed before the image
 * is opened, so a typo anywhere changes nothing.
 */
export async function readScript(
  commands: readonly string[],
  stdin: AsyncIterable<unknown> & { readonly isTTY?: boolean } = process.stdin,
): Promise<IoCommand[]> {
  let lines: readonly string[] = commands;
  if (lines.length === 0) {
    if (stdin.isTTY === true) {
      throw new CliError('io: no commands: give -c COMMAND (repeatable) or pipe a script on stdin', exitCodes.usage);
    }
    let text = '';
    for await (const chunk of stdin) text += String(chunk);
    lines = text.split('\n').filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
  }
  return lines.map(parseIoCommand);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  addFormatOption(program
    .command('io'))
    .description('run qemu-io style commands, in order, on one open image')
    .argument('<file>', 'qcow2 image')
    .option(
      '-c, --cmd <command>',
      "qemu-io command, repeatable: 'write [-P PATTERN] [-z [-u]] OFF LEN', 'read [-P PATTERN] OFF LEN', " +
        "'discard OFF LEN', 'truncate SIZE', 'flush' (without -c: one command per line on stdin)",
      collect,
      [],
    )
    .option('-r, --read-only', 'open the image read-only')
    .option(forceShareFlags, `${forceShareHelp}: with -r`)
    .option(dropBitmapsFlag, dropBitmapsHelp)
    .action(async (file: string, opts: { cmd: string[]; readOnly?: boolean; forceShare?: boolean; dropBitmaps?: boolean; format?: string }, cmd: Command) => {
      checkedFormat('io', opts.format);
      const readOnly = opts.readOnly === true;
      checkForceShare(opts.forceShare === true, readOnly, 'io');
      const script = await readScript(opts.cmd);
      const output = outputOf(cmd);
      const image = await openImage(file, { readOnly, forceShare: opts.forceShare === true, dropBitmaps: opts.dropBitmaps === true });
      // A refused command leaves the image consistent, so it is closed normally;
      // an unexpected error propagates without close(), so nothing more is written.
      const summary = await runIoCommands(image, script, output.out);
      await image.close();
      if (summary.failed > 0) {
        throw new CliError(`io: ${summary.failed} of ${summary.executed} commands failed`, exitCodes.failed);
      }
    });
}
