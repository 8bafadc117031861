// Which QEMU judges us: the versions of the binaries actually run (tool-path.ts
// resolves and checks them once per setting), so a report can name them
// exactly (verdicts differ between QEMU releases and builds, digest §11).
import { resolveTool } from './tool-path.js';

export interface QemuVersion {
  /** e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" */
  readonly qemuImg: string;
  readonly qemuIo: string;
  /** Absolute paths of the binaries those versions belong to. */
  readonly qemuImgPath: string;
  readonly qemuIoPath: string;
}

/** Both tools' versions; throws QemuMissingError naming the first tool that is missing or not QEMU. */
export async function qemuVersion(): Promise<QemuVersion> {
  const img = await resolveTool('qemu-img');
  const io = await resolveTool('qemu-io');
  return { qemuImg: img.version, qemuIo: io.version, qemuImgPath: img.path, qemuIoPath: io.path };
}

/** One line naming both binaries and their versions, for summaries: "qemu-img 7.2.22 (…) at /usr/bin/qemu-img, qemu-io 7.2.22 (…) at /usr/bin/qemu-io". */
export function formatQemuVersion(v: QemuVersion): string {
  return `qemu-img ${v.qemuImg} at ${v.qemuImgPath}, qemu-io ${v.qemuIo} at ${v.qemuIoPath}`;
}
