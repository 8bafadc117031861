// `qemu-img compare`: guest-visible equality of two images. Exit 0 = identical,
// 1 = different (a verdict, returned), 2 or more = could not compare (thrown).
// QEMU compares in 512-byte sectors, so the reported offset is the start of the
// first differing sector, not necessarily the first differing byte.
import { QemuImgError, QemuOutputError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';

export type QemuCompareResult =
  | { readonly identical: true }
  | {
      readonly identical: false;
      /** Start of the first differing 512-byte sector; absent for a strict-mode size mismatch. */
      readonly firstDifferenceOffset?: number;
      /** qemu-img's own words, e.g. "Content mismatch at offset 4608!". */
      readonly message: string;
    };

export interface QemuCompareConstraints {
  readonly formatA?: string;
  readonly formatB?: string;
  /** `-s`: also fail on a size mismatch or a different allocation state. */
  readonly strict?: boolean;
  /** `-U`: compare images another process holds open. */
  readonly forceShare?: boolean;
}

export async function qemuImgCompare(
  pathA: string,
  pathB: string,
  constraints: QemuCompareConstraints = {},
): Promise<QemuCompareResult> {
  const args = ['compare', '-f', constraints.formatA ?? 'qcow2', '-F', constraints.formatB ?? 'qcow2'];
  if (constraints.strict === true) args.push('-s');
  if (constraints.forceShare === true) args.push('-U');
  args.push(pathA, pathB);
  const run = await runTool('qemu-img', args);
  if (run.exitCode === 0) return { identical: true };
  if (run.exitCode !== 1) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
  const message = run.stdout.trim();
  const offset = /offset (\d+)/.exec(message)?.[1];
  if (offset !== undefined) return { identical: false, firstDifferenceOffset: safeInteger(offset, args, message), message };
  if (/size mismatch/i.test(message)) return { identical: false, message };
  throw new QemuOutputError('qemu-img', args.join(' '), 'exit 1 without a mismatch message', run.stdout + run.stderr);
}

function safeInteger(text: string, args: readonly string[], output: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) {
    throw new QemuOutputError('qemu-img', args.join(' '), `offset ${text} is past 2^53`, output);
  }
  return value;
}
