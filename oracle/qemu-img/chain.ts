// Backing chains with qemu-img: `rebase`, `commit`, and a raw backing file
// written in full (`convert -S 0`). A refusal is a QemuImgError carrying
// qemu-img's message and exit code. Backing file names are passed as given;
// QEMU resolves a relative one against the directory of the image that names it.
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';

export interface QemuRebaseConstraints {
  /** The new backing file's name as the header will hold it; undefined = no backing file (`-b ''`). */
  readonly backingFile: string | undefined;
  /** `-F`, required by qemu-img 7.2 with a backing file. */
  readonly backingFormat?: 'qcow2' | 'raw';
  /** `-u`: change the header only. */
  readonly unsafe: boolean;
}

async function run(args: string[]): Promise<void> {
  const result = await runTool('qemu-img', args);
  if (result.exitCode !== 0) throw new QemuImgError(args, result.exitCode, stripToolPrefix('qemu-img', result.stderr));
}

/** `qemu-img rebase -f qcow2 [-u] -b FILE [-F FMT] IMAGE`. */
export function qemuImgRebase(path: string, c: QemuRebaseConstraints): Promise<void> {
  const args = ['rebase', '-q', '-f', 'qcow2'];
  if (c.unsafe) args.push('-u');
  args.push('-b', c.backingFile ?? '');
  if (c.backingFile !== undefined && c.backingFormat !== undefined) args.push('-F', c.backingFormat);
  args.push(path);
  return run(args);
}

/** `qemu-img commit -f qcow2 IMAGE`: into its backing file, then the image is emptied. */
export function qemuImgCommit(path: string): Promise<void> {
  return run(['commit', '-q', '-f', 'qcow2', path]);
}

/**
 * `qemu-img convert -S 0 -O raw SOURCE TARGET`: the guest bytes as a raw file
 * with every byte written (no holes), so that block status reports data
 * everywhere in it, whatever the bytes are.
 */
export function qemuImgWriteRawInFull(source: string, target: string): Promise<void> {
  return run(['convert', '-S', '0', '-f', 'qcow2', '-O', 'raw', source, target]);
}
