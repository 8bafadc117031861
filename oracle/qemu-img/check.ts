// `qemu-img check --output=json`: QEMU's verdict on an image. The exit code is the
// verdict (digest §8.4: 0 clean, 1 check not completed, 2 corruptions, 3 leaks
// only, 63 no check support); the JSON, when printed, gives the counts. JSON
// members that are zero are absent, so every count defaults to 0.
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QemuImgError, QemuOutputError } from '../errors.js';
import { isLockConflict, runTool, stripToolPrefix } from '../run.js';
import { keepFile, withTempDir, type KeepConstraints } from '../temp.js';
import { defined, JsonReader, type JsonObject } from './json.js';

export type QemuCheckVerdict = 'clean' | 'leaks' | 'corrupt' | 'cannot-check' | 'unsupported';

export interface QemuCheckResult {
  readonly verdict: QemuCheckVerdict;
  readonly exitCode: number;
  readonly corruptions: number;
  readonly leaks: number;
  readonly checkErrors: number;
  readonly corruptionsFixed: number;
  readonly leaksFixed: number;
  readonly imageEndOffset?: number;
  readonly totalClusters?: number;
  readonly allocatedClusters?: number;
  readonly fragmentedClusters?: number;
  readonly compressedClusters?: number;
  /** stderr lines without the "qemu-img: " prefix: per-cluster diagnostics, open errors. */
  readonly messages: readonly string[];
  /** The parsed JSON; absent when qemu-img could not open the image or the check failed. */
  readonly raw: JsonObject | undefined;
}

export interface QemuCheckConstraints {
  /** Defaults to qcow2 (never let qemu-img probe a damaged image's format). */
  readonly format?: 'qcow2' | 'raw';
  /** `-r leaks` or `-r all`; the image is opened read-write. Default: no repair. */
  readonly repair?: 'leaks' | 'all';
  /** `-U`: check an image another process (a qemu-io session) holds open. No repair then. */
  readonly forceShare?: boolean;
}

export const checkExitCodes = { clean: 0, cannotCheck: 1, corrupt: 2, leaks: 3, unsupported: 63 } as const;

export function checkVerdict(exitCode: number): QemuCheckVerdict | undefined {
  switch (exitCode) {
    case checkExitCodes.clean:
      return 'clean';
    case checkExitCodes.cannotCheck:
      return 'cannot-check';
    case checkExitCodes.corrupt:
      return 'corrupt';
    case checkExitCodes.leaks:
      return 'leaks';
    case checkExitCodes.unsupported:
      return 'unsupported';
    default:
      return undefined;
  }
}

/** Check the image at `path`. A missing file throws (it is no verdict on an image). */
export async function qemuImgCheck(path: string, constraints: QemuCheckConstraints = {}): Promise<QemuCheckResult> {
  await stat(path); // ENOENT here names the path; qemu-img would call it "cannot check"
  const args = ['check', '--output=json', '-f', constraints.format ?? 'qcow2'];
  if (constraints.repair !== undefined) args.push('-r', constraints.repair);
  if (constraints.forceShare === true) args.push('-U');
  args.push(path);
  const run = await runTool('qemu-img', args);
  const command = args.join(' ');
  if (isLockConflict(run.stderr)) {
    // Another process holds the image: no verdict on the image at all.
    throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
  }
  const verdict = checkVerdict(run.exitCode);
  if (verdict === undefined) {
    throw new QemuOutputError('qemu-img', command, `unexpected exit code ${run.exitCode}`, run.stderr);
  }
  const messages = stripToolPrefix('qemu-img', run.stderr)
    .split('\n')
    .filter((line) => line !== '');
  if (run.stdout.trim() === '') {
    // Open failure or "Check failed: …": qemu-img prints no report at all.
    if (verdict !== 'cannot-check' && verdict !== 'unsupported') {
      throw new QemuOutputError('qemu-img', command, `exit ${run.exitCode} without a JSON report`, run.stderr);
    }
    const zero = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0 };
    return { verdict, exitCode: run.exitCode, ...zero, messages, raw: undefined };
  }
  const json = new JsonReader(command);
  const raw = json.object(json.parse(run.stdout), 'check report');
  return {
    verdict,
    exitCode: run.exitCode,
    corruptions: json.countOrZero(raw, 'corruptions'),
    leaks: json.countOrZero(raw, 'leaks'),
    checkErrors: json.integer(raw, 'check-errors'),
    corruptionsFixed: json.countOrZero(raw, 'corruptions-fixed'),
    leaksFixed: json.countOrZero(raw, 'leaks-fixed'),
    ...defined('imageEndOffset', json.optionalInteger(raw, 'image-end-offset')),
    ...defined('totalClusters', json.optionalInteger(raw, 'total-clusters')),
    ...defined('allocatedClusters', json.optionalInteger(raw, 'allocated-clusters')),
    ...defined('fragmentedClusters', json.optionalInteger(raw, 'fragmented-clusters')),
    ...defined('compressedClusters', json.optionalInteger(raw, 'compressed-clusters')),
    messages,
    raw,
  };
}

export interface QemuCheckBytesResult extends QemuCheckResult {
  /** Where the image was kept, when it was not clean and `keepOnFailure` was given. */
  readonly keptPath?: string;
}

/**
 * Judge an in-memory image: write it to a temp file (with `siblings` next to
 * it), check it, remove the files. Anything but a clean verdict keeps a copy
 * of the image in `keepOnFailure` (named `name`).
 */
export function qemuImgCheckBytes(
  bytes: Uint8Array,
  constraints: QemuCheckConstraints & KeepConstraints & { readonly name?: string; readonly siblings?: Readonly<Record<string, Uint8Array>> } = {},
): Promise<QemuCheckBytesResult> {
  const name = constraints.name ?? 'image.qcow2';
  return withTempDir(async (dir) => {
    const path = join(dir, name);
    await writeFile(path, bytes);
    // Files next to the image, such as the backing file its header names (qemu-img check opens the chain).
    for (const [sibling, contents] of Object.entries(constraints.siblings ?? {})) await writeFile(join(dir, sibling), contents);
    const result = await qemuImgCheck(path, constraints);
    if (result.verdict === 'clean' || constraints.keepOnFailure === undefined) return result;
    return { ...result, keptPath: await keepFile(path, constraints.keepOnFailure, name) };
  });
}
