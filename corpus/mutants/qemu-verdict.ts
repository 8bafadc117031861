// QEMU's side of a malformed-image verdict: does `qemu-img info` open the
// image, and how does `qemu-img check` classify it. Both run on one temp copy.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QemuImgError, qemuImgCheck, qemuImgInfo, withTempDir, type QemuCheckVerdict } from '../../oracle/index.js';

export interface QemuVerdict {
  readonly info: { readonly ok: true } | { readonly ok: false; readonly message: string };
  readonly check: { readonly verdict: QemuCheckVerdict; readonly corruptions: number; readonly leaks: number; readonly firstMessage?: string };
}

export function qemuVerdict(bytes: Uint8Array): Promise<QemuVerdict> {
  return withTempDir(async (dir) => {
    const path = join(dir, 'mutant.qcow2');
    await writeFile(path, bytes);
    let info: QemuVerdict['info'];
    try {
      await qemuImgInfo(path);
      info = { ok: true };
    } catch (error) {
      if (!(error instanceof QemuImgError)) throw error;
      info = { ok: false, message: firstLine(error.detail) };
    }
    const check = await qemuImgCheck(path);
    const firstMessage = check.messages[0];
    return {
      info,
      check: { verdict: check.verdict, corruptions: check.corruptions, leaks: check.leaks, ...(firstMessage === undefined ? {} : { firstMessage: firstLine(firstMessage) }) },
    };
  });
}

function firstLine(text: string): string {
  // Temp paths differ between runs; keep messages comparable.
  return (text.split('\n')[0] ?? '').replace(/\/[^\s':]*mutant\.qcow2/g, 'mutant.qcow2');
}
