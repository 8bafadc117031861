// A guest read for a check: a disk shorter than the range read is what the
// implementation holds (QEMU 7.2 shrinks the disk on a snapshot revert it
// refuses), so it is a data violation of that check, naming the read, the
// size it needs, the size found and the model's size; never a harness error.
import type { ImageDriver } from '../driver.js';
import { GuestDiskShortError } from '../driver.js';
import { PropertyViolation, type CheckName } from '../violation.js';

/**
 * `driver.read(offset, length)` (bytes), for the check `check` at `when`.
 * @throws PropertyViolation(check) when the implementation's disk is shorter than `offset + length` bytes (GuestDiskShortError), with the model's `modelSize`.
 */
export async function readGuest(driver: ImageDriver, offset: number, length: number, check: CheckName, when: string, modelSize: number): Promise<Uint8Array> {
  try {
    return await driver.read(offset, length);
  } catch (error) {
    if (!(error instanceof GuestDiskShortError)) throw error;
    throw new PropertyViolation(
      check,
      `${when}: ${error.operation} needs a guest disk of ${error.needed} bytes, the implementation's has ${error.found} (the model's has ${modelSize})`,
      { cause: error },
    );
  }
}
