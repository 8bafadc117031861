// qemuJudges: at the end of each sequence QEMU, not our own code, judges the
// image: `qemu-img check` finds no corruption and no leak in it and in every
// qcow2 backing file of its chain, `qemu-img compare` finds the whole chain's
// guest view identical to a raw rendering of the model's content, and
// `qemu-img map` agrees with the model on every guest range and the depth that
// answers it (qemu-map.ts). The chain is written out once and the read-only
// runs go at the same time; their verdicts are reported in that order.
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
      const layers = ['image.qcow2', ...(env.driver.backingChain?.() ?? []).filter((f) => f.format === 'qcow2').map((f) => f.name)];
      const [checks, compare, map] = await Promise.allSettled([
        Promise.all(layers.map((name) => qemuImgCheck(join(dir, name)))),
        qemuImgCompare(raw, image, { formatA: 'raw', formatB: 'qcow2' }),
        judgeMap(image, env.state),
      ]);
      settled(checks).forEach((checked, i) => {
        if (checked.verdict === 'clean') return;
        const which = i === 0 ? '' : ` on the backing file ${layers[i]}`;
        throw new PropertyViolation(
          'qemu-img-check',
          `qemu-img check${which} says ${checked.verdict} (${checked.corruptions} corruptions, ${checked.leaks} leaks, ${checked.checkErrors} check errors): ${checked.messages.slice(0, 5).join('; ')}`,
        );
      });
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
