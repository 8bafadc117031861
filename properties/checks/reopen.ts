// reopen: closing and opening the image again changes nothing a guest or a
// checker can see. Checked after every reopen in the sequence and once more at
// its end: the whole disk reads the same before and after (and as the model
// says), and the reopened image is still equivalent to the model.
import { firstDifference } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check, CheckEnv } from './check.js';
import { assertStructure } from './structure.js';
import { compareWholeDisk } from './whole-disk.js';

async function assertReopened(env: CheckEnv, when: string): Promise<void> {
  await compareWholeDisk(env.driver, env.state, 'reopen', when);
  assertStructure(await env.image(), env.state, when);
}

export const reopenCheck: Check = {
  name: 'reopen',
  async afterOp(env, op) {
    if (op.kind === 'reopen') await assertReopened(env, 'after reopen');
  },
  async atEnd(env) {
    const before = await compareWholeDisk(env.driver, env.state, 'reopen', 'before the final reopen');
    const outcome = await env.driver.apply({ kind: 'reopen' });
    if (!outcome.ok) throw new PropertyViolation('reopen', `the final reopen failed: ${outcome.error} (${outcome.message})`);
    const after = await compareWholeDisk(env.driver, env.state, 'reopen', 'after the final reopen');
    const at = firstDifference(before, after);
    if (at >= 0) throw new PropertyViolation('reopen', `guest offset 0x${at.toString(16)} changed across the final reopen`);
    assertStructure(await env.image(), env.state, 'after the final reopen');
  },
};
