// `qemu-img snapshot -c/-a/-d/-l`: internal snapshots. A refusal (unknown name,
// refcount overflow) is a QemuImgError carrying qemu-img's message and errno.
// The list comes from `qemu-img info --output=json`, because `snapshot -l` only
// prints a column table that names with spaces would break.
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';
import { qemuImgInfo, type QemuSnapshotInfo } from './info.js';

export type QemuSnapshotAction = 'create' | 'apply' | 'delete';

const actionFlags: Readonly<Record<QemuSnapshotAction, string>> = { create: '-c', apply: '-a', delete: '-d' };

/** `qemu-img snapshot -c|-a|-d NAME` (NAME may also be a snapshot ID for -a/-d). */
export async function qemuImgSnapshot(path: string, action: QemuSnapshotAction, name: string): Promise<void> {
  // qemu-img 7.2 snapshot has no -f; the format is probed (these are intact images).
  const args = ['snapshot', '-q', actionFlags[action], name, path];
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
}

/** The snapshot table in table order. */
export async function qemuImgSnapshotList(path: string): Promise<readonly QemuSnapshotInfo[]> {
  return (await qemuImgInfo(path)).snapshots;
}
