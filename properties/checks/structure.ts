// structure: after every operation the flushed image decodes, is equivalent to
// the model (same kinds, sharing, bytes, refcounts and COPIED flags up to a
// renaming of host offsets), and the model's checker finds it clean.
import { abstractImage, equivalent, type ModelState } from '../../model/index.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check, ImageSample } from './check.js';

export function assertStructure(sample: ImageSample, state: ModelState, when: string): void {
  const eq = equivalent(state, abstractImage(sample.decoded()));
  if (!eq.ok) throw new PropertyViolation('structure', `${when}: ${eq.message}`);
  const report = sample.report();
  if (report.verdict !== 'clean') {
    const messages = report.messages.slice(0, 5).join('; ');
    throw new PropertyViolation(
      'check-image',
      `${when}: the checker says ${report.verdict} (${report.corruptions} corruptions, ${report.leaks} leaks, ${report.checkErrors} check errors): ${messages}`,
    );
  }
}

export const structureCheck: Check = {
  name: 'structure',
  async afterOp(env, op) {
    assertStructure(await env.image(), env.state, `after ${formatStep(op)}`);
  },
};
