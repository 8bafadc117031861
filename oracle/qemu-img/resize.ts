// `qemu-img resize`: change the virtual size. --shrink is always passed: it only
// lifts qemu-img's "are you sure" refusal for shrinking and changes nothing when
// growing, so callers need not know the current size.
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';

export async function qemuImgResize(path: string, size: number): Promise<void> {
  const args = ['resize', '-q', '--shrink', '-f', 'qcow2', path, String(size)];
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
}
