// qemuJudges: at the end of each sequence QEMU, not our own code, judges the
// image: `qemu-img check` finds no corruption and no leak, `qemu-img compare`
// finds it identical to a raw rendering of the model's content, and `qemu-img
// map` agrees with the model on every guest range (qemu-map.ts). The image is
// written out once and the three read-only runs go at the same time; their
// verdicts are reported in that order.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { read } from '../../model/index.js';
import { qemuImgCheck, qemuImgCompare, withTempDir } from '../../oracle/index.js';
import { PropertyViolation } from '../violation.js';
import type { Check } from './check.js';
import { judgeMap } from './qemu-map.js';

export const qemuJudgesCheck: Check = {
  name: 'qemu-judges',
  async atEnd(env) {
    await withTempDir(async (dir) => {
      const image = join(dir, 'image.qcow2');
      const raw = join(dir, 'model.raw');
      await env.driver.writeTo(image);
      await writeFile(raw, read(env.state, 0, env.state.options.virtualSize));
      const [check, compare, map] = await Promise.allSettled([
        qemuImgCheck(image),
        qemuImgCompare(raw, image, { formatA: 'raw', formatB: 'qcow2' }),
        judgeMap(image, env.state),
      ]);
      const checked = settled(check);
      if (checked.verdict !== 'clean') {
        throw new PropertyViolation(
          'qemu-img-check',
          `qemu-img check says ${checked.verdict} (${checked.corruptions} corruptions, ${checked.leaks} leaks, ${checked.checkErrors} check errors): ${checked.messages.slice(0, 5).join('; ')}`,
        );
      }
      const compared = settled(compare);
      if (!compared.identical) {
        throw new PropertyViolation('qemu-img-compare', `qemu-img compare against the model's raw rendering: ${compared.message}`);
      }
      settled(map);
    });
  },
};

/** The value of a settled run, or what it threw. */
function settled<T>(result: PromiseSettledResult<T>): T {
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}
