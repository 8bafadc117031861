// Which QEMU judges us: detected once per process and cached, so a report can
// name the exact versions (verdicts differ between QEMU releases, digest §11).
import { QemuOutputError, type QemuTool } from './errors.js';
import { runTool } from './run.js';

export interface QemuVersion {
  /** e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" */
  readonly qemuImg: string;
  readonly qemuIo: string;
}

let cached: Promise<QemuVersion> | undefined;

/** Both tools' versions; throws QemuMissingError naming the first missing tool. */
export function qemuVersion(): Promise<QemuVersion> {
  cached ??= detect().catch((error: unknown) => {
    cached = undefined; // a later call may succeed once qemu-utils is installed
    throw error;
  });
  return cached;
}

async function detect(): Promise<QemuVersion> {
  const qemuImg = await toolVersion('qemu-img');
  const qemuIo = await toolVersion('qemu-io');
  return { qemuImg, qemuIo };
}

async function toolVersion(tool: QemuTool): Promise<string> {
  const run = await runTool(tool, ['--version']);
  const match = /^\S+ version (.+)$/m.exec(run.stdout);
  if (run.exitCode !== 0 || match?.[1] === undefined) {
    throw new QemuOutputError(tool, '--version', `no version line (exit ${run.exitCode})`, run.stdout + run.stderr);
  }
  return match[1].trim();
}
