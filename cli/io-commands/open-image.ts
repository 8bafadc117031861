import { Qcow2BitmapsError, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';

/** The -U / --force-share flag, as qemu-img and qemu-io spell it. */
export const forceShareFlags = '-U, --force-share';
export const forceShareHelp = 'open the image even while another process writes it (read-only commands only)';

/**
 * qemu-img's rule for -U: sharing the image with writers is only for readers.
 * QEMU says `force-share=on can only be used with read-only images` and exits
 * 1; here it is a usage error (exit 2), checked before any file is opened.
 */
export function checkForceShare(forceShare: boolean, readOnly: boolean, command: string): void {
  if (forceShare && !readOnly) {
    throw new CliError(`${command}: force-share=on (-U) can only be used with read-only images`, exitCodes.usage);
  }
}

/**
 * Opens FILE with the engine, turning a refusal into one CLI line:
 * `could not open 'a.qcow2': invalid cluster_bits at offset 20: 30 (9…21)`,
 * or, while another process holds the image,
 * `could not open 'a.qcow2': Failed to get shared "write" lock: byte 101 …`.
 * Anything that is not a typed refusal (an engine assertion) propagates as is,
 * so it is reported as the engine bug it is. A refusal for persistent bitmaps
 * names them and the two ways out. `backing: false` leaves the backing chain
 * closed (qemu-img info's BDRV_O_NO_BACKING; read-only opens only).
 */
export async function openImage(path: string, options: { readOnly: boolean; forceShare?: boolean; dropBitmaps?: boolean; backing?: boolean }): Promise<Qcow2Image> {
  try {
    return await Qcow2Image.openFile(path, {
      readOnly: options.readOnly,
      forceShare: options.forceShare ?? false,
      dropBitmaps: options.dropBitmaps ?? false,
      backing: options.backing ?? true,
    });
  } catch (error) {
    if (error instanceof Qcow2BitmapsError) {
      throw new CliError(`could not open '${path}' for writing: ${error.message}; open it read-only, or pass ${dropBitmapsFlag} to discard the bitmaps`);
    }
    if (error instanceof Qcow2Error) throw new CliError(`could not open '${path}': ${error.message}`);
    throw error;
  }
}

/** The CLI option that lets a read-write open drop persistent bitmaps (OpenOptions.dropBitmaps). */
export const dropBitmapsFlag = '--drop-bitmaps';
export const dropBitmapsHelp = 'allow writing an image with persistent dirty bitmaps by discarding them (they are lost; their clusters leak)';
