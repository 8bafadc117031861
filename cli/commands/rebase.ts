// `qcow2-verify rebase [-u] -b FILE -F FMT IMAGE` and `commit IMAGE`: the engine's
// Qcow2Image.rebase and commit with qemu-img's flags and words.
import type { Command } from 'commander';
import { Qcow2Error } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import { openImage } from '../io-commands/open-image.js';
import { outputOf } from '../io-commands/output.js';
import { parseBackingFormat } from './create.js';

interface RebaseFlags {
  backingFile?: string;
  backingFormat?: string;
  unsafe?: boolean;
  format?: string;
}

/** An engine refusal as qemu-img words it, with the file. */
function failed(what: string, file: string, error: unknown): never {
  if (error instanceof Qcow2Error) throw new CliError(`${what} '${file}': ${error.message}`);
  throw error;
}

export function register(program: Command): void {
  addFormatOption(program
    .command('rebase'))
    .description("change an image's backing file (like qemu-img rebase): safe mode first copies into the image what would change")
    .argument('<file>', 'qcow2 image')
    .option('-b, --backing-file <file>', "new backing file name, stored as given (relative to the image's directory); '' for none")
    .option('-F, --backing-format <fmt>', 'format of the new backing file: qcow2 or raw (required, as in qemu-img 7.2)')
    .option('-u, --unsafe', 'only rewrite the header: the new backing file need not exist')
    .action(async (file: string, opts: RebaseFlags) => {
      checkedFormat('rebase', opts.format);
      if (opts.backingFile === undefined) throw new CliError('rebase: expecting a backing file (-b)', exitCodes.usage);
      const backingFile = opts.backingFile === '' ? null : opts.backingFile;
      if (backingFile !== null && opts.backingFormat === undefined) {
        throw new CliError(`Could not change the backing file to '${backingFile}': backing format must be specified`);
      }
      const backingFormat = opts.backingFormat === undefined ? undefined : parseBackingFormat(opts.backingFormat);
      // Unsafe mode does not need the old backing file, as qemu-img rebase -u.
      const image = await openImage(file, { readOnly: false, backing: opts.unsafe !== true });
      try {
        await image.rebase({ backingFile, unsafe: opts.unsafe === true, ...(backingFormat === undefined ? {} : { backingFormat }) });
      } catch (error) {
        failed('could not rebase', file, error);
      } finally {
        await image.close();
      }
    });

  addFormatOption(program
    .command('commit'))
    .description("write an overlay's data into its backing file and empty the overlay (like qemu-img commit)")
    .argument('<file>', 'qcow2 image with a backing file')
    .option('-q, --quiet', "do not print 'Image committed.'")
    .action(async (file: string, opts: { quiet?: boolean; format?: string }, cmd: Command) => {
      checkedFormat('commit', opts.format);
      const image = await openImage(file, { readOnly: false });
      try {
        await image.commit();
      } catch (error) {
        failed('could not commit', file, error);
      } finally {
        await image.close();
      }
      if (opts.quiet !== true) outputOf(cmd).out('Image committed.');
    });
}
