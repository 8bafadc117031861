// `-f FMT`, qemu-img's and qemu-io's image format option: every command that
// opens an image accepts `-f qcow2`, so a qemu-img command line works as it is.
// Another format is refused before any file is opened, naming what is accepted.
import type { Command } from 'commander';
import { usageError } from './fatal.js';

/** Adds `-f, --format <fmt>` to a command. */
export function addFormatOption(command: Command, formats: readonly string[] = ['qcow2']): Command {
  return command.option('-f, --format <fmt>', `image format: ${formats.join(' or ')}`);
}

/** The format given with -f (undefined: none given), refused as a usage error unless it is one of `formats`. */
export function checkedFormat<F extends string>(command: string, format: string | undefined, formats: readonly F[] = ['qcow2' as F]): F | undefined {
  if (format === undefined) return undefined;
  const known = formats.find((f) => f === format);
  if (known === undefined) usageError(`${command}: unsupported format '${format}' (only ${formats.join(' or ')})`);
  return known;
}
