// `qcow2-verify map --output=html FILE`: the picture of any image the model's
// tolerant reader can lay out, clean or damaged, printed to stdout like the
// other formats. It reads the file's bytes on demand (no engine open, so an
// image the engine refuses is still drawn) and never writes to it.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { systemErrorText } from '../../impl/index.js';
import { imageLayout, renderHtml } from '../../properties/report/html/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { fileReader } from '../io-commands/file-reader.js';


/** The HTML page for the image at `file`; a CliError (exit 1) when it cannot be opened. */
export function mapHtml(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw new CliError(`map: Could not open '${file}': ${systemErrorText(error)}`, exitCodes.failed);
  }
  try {
    // a directory opens and fails only when read (EISDIR); refused as every other command refuses it
    const stat = fstatSync(fd);
    if (!stat.isFile() && !stat.isBlockDevice()) throw new CliError(`map: Could not open '${file}': not a regular file`, exitCodes.failed);
    return renderHtml(imageLayout(fileReader(fd)), { title: `qcow2-verify map: ${file}` });
  } finally {
    closeSync(fd);
  }
}
