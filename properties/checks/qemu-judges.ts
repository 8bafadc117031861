// qemuJudges: at the end of each sequence QEMU, not our own code, judges the
// image: `qemu-img check` finds no corruption and no leak, and `qemu-img compare`
// finds it identical to a raw rendering of the model's content.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { read } from '../../model/index.js';
import { qemuImgCheck, qemuImgCompare, withTempDir } from '../../oracle/index.js';
import { PropertyViolation } from '../violation.js';
import type { Check } from './check.js';

export const qemuJudgesCheck: Check = {
  name: 'qemu-judges',
  async atEnd(env) {
    await withTempDir(async (dir) => {
      const image = join(dir, 'image.qcow2');
      const raw = join(dir, 'model.raw');
      await env.driver.writeTo(image);
      await writeFile(raw, read(env.state, 0, env.state.options.virtualSize));
      const check = await qemuImgCheck(image);
      if (check.verdict !== 'clean') {
        throw new PropertyViolation(
          'qemu-img-check',
          `qemu-img check says ${check.verdict} (${check.corruptions} corruptions, ${check.leaks} leaks, ${check.checkErrors} check errors): ${check.messages.slice(0, 5).join('; ')}`,
        );
      }
      const compare = await qemuImgCompare(raw, image, { formatA: 'raw', formatB: 'qcow2' });
      if (!compare.identical) {
        throw new PropertyViolation('qemu-img-compare', `qemu-img compare against the model's raw rendering: ${compare.message}`);
      }
    });
  },
};
