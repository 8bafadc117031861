// readsAndOutcomes, beyond the outcome comparison every property makes: after
// each successful write, write-zeroes or discard the range it touched reads back
// as the model says (clamped to the disk), and at the end so does the whole disk.
import { read } from '../../model/index.js';
import { firstDifference, formatStep } from '../steps.js';
import { PropertyViolation, hexPreview } from '../violation.js';
import type { Check } from './check.js';
import { readGuest } from './guest-read.js';
import { compareWholeDisk } from './whole-disk.js';

export const readsCheck: Check = {
  name: 'reads',
  async afterOp(env, op, outcome) {
    if (!outcome.ok || (op.kind !== 'write' && op.kind !== 'writeZeroes' && op.kind !== 'discard')) return;
    const length = Math.min(op.length, env.state.options.virtualSize - op.offset);
    if (length <= 0) return;
    const expected = read(env.state, op.offset, length);
    const actual = await readGuest(env.driver, op.offset, length, 'read', `after ${formatStep(op)}`, env.state.options.virtualSize);
    const at = firstDifference(expected, actual);
    if (at >= 0) {
      throw new PropertyViolation(
        'read',
        `after ${formatStep(op)}: guest offset 0x${(op.offset + at).toString(16)} reads [${hexPreview(actual.subarray(at))}], the model expects [${hexPreview(expected.subarray(at))}]`,
      );
    }
  },
  async atEnd(env) {
    await compareWholeDisk(env.driver, env.state, 'read', 'at the end of the sequence');
  },
};
