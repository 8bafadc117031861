import { Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { CliError } from '../fatal.js';

/**
 * Opens FILE with the engine, turning a refusal into one CLI line:
 * `could not open 'a.qcow2': invalid cluster_bits at offset 20: 30 (9…21)`.
 * Anything that is not a typed refusal (an engine assertion) propagates as is,
 * so it is reported as the engine bug it is.
 */
export async function openImage(path: string, options: { readOnly: boolean }): Promise<Qcow2Image> {
  try {
    return await Qcow2Image.openFile(path, { readOnly: options.readOnly });
  } catch (error) {
    if (error instanceof Qcow2Error) throw new CliError(`could not open '${path}': ${error.message}`);
    throw error;
  }
}
