// `qemu-img bitmap`: persistent dirty bitmaps in a qcow2 image. A refusal is a
// QemuImgError carrying qemu-img's message.
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';

export type QemuBitmapAction = 'add' | 'remove' | 'enable' | 'disable';

export interface QemuBitmapConstraints {
  /** Bytes of guest data per bit (`-g`, only for add); QEMU's default is the cluster size. */
  readonly granularity?: number;
}

/** `qemu-img bitmap --add|--remove|--enable|--disable FILE NAME`. */
export async function qemuImgBitmap(path: string, action: QemuBitmapAction, name: string, constraints: QemuBitmapConstraints = {}): Promise<void> {
  const granularity = constraints.granularity === undefined ? [] : ['-g', String(constraints.granularity)];
  const args = ['bitmap', '-f', 'qcow2', `--${action}`, ...granularity, path, name];
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
}
