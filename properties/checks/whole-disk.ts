// Shared helper: the whole guest disk read through the driver, compared with the model.
import { read, type ModelState } from '../../model/index.js';
import type { ImageDriver } from '../driver.js';
import { readGuest } from './guest-read.js';
import { firstDifference } from '../steps.js';
import { PropertyViolation, hexPreview, type CheckName } from '../violation.js';

/** Reads [0, virtualSize) through the driver and throws `check` on the first byte that differs from the model. */
export async function compareWholeDisk(driver: ImageDriver, state: ModelState, check: CheckName, when: string): Promise<Uint8Array> {
  const size = state.options.virtualSize;
  if (size === 0) return new Uint8Array();
  const expected = read(state, 0, size);
  const actual = await readGuest(driver, 0, size, check, when, size);
  const at = firstDifference(expected, actual);
  if (at >= 0) {
    throw new PropertyViolation(
      check,
      `${when}: guest offset 0x${at.toString(16)} reads [${hexPreview(actual.subarray(at))}], the model expects [${hexPreview(expected.subarray(at))}]`,
    );
  }
  return actual;
}
