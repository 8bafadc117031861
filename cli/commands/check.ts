// `qcow2-verify check [-f qcow2] [--output=json] FILE`: the model's checker, with
// qemu-img check's report, JSON member names and exit codes (0 clean, 1 check
// not completed, 2 corruptions, 3 leaks only, 63 a format without checks).
import { closeSync, fstatSync, openSync } from 'node:fs';
import { imageLockPerms, lockImageFile, Qcow2Error, Qcow2Image, type RepairMode, type RepairResult } from '../../impl/index.js';
import { checkImage, checkReportJson, type ByteReader, type CheckReport } from '../../model/index.js';
import { exitCodes, type ExitCode } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { fileReader } from '../io-commands/file-reader.js';

// Registered by check-command.ts (light), which loads this module when check runs.
export { registerCheck } from './check-command.js';

export interface CheckCommandOptions {
  readonly output: 'human' | 'json';
  /** -U: check even while another process writes the image. */
  readonly forceShare: boolean;
  /** `-f`: undefined probes the format as qemu-img does; 'qcow2' checks whatever the file holds. */
  readonly format?: string;
}

const qcowMagic = 0x514649fb;

/** qemu-img's words for a format without a check (raw: an empty file, or anything not qcow2). */
const noChecks = 'This image format does not support checks';

/**
 * qcow2_probe: the qcow2 magic and a version of at least 2 (QEMU reads 2 KiB,
 * zeros past the end of the file). Anything else qemu-img probes as another
 * format; the formats it can check besides qcow2 are not ours to check.
 */
function probesAsQcow2(reader: ByteReader): boolean {
  const head = new DataView(reader.read(0, 8).buffer);
  return head.getUint32(0) === qcowMagic && head.getUint32(4) >= 2;
}


export function exitCodeOf(report: CheckReport): ExitCode {
  switch (report.verdict) {
    case 'clean':
      return exitCodes.ok;
    case 'cannot-check':
      return exitCodes.checkNotCompleted;
    case 'corrupt':
      return exitCodes.checkCorrupt;
    case 'leaks':
      return exitCodes.checkLeaks;
    default: {
      const never: never = report.verdict;
      throw new Error(`unknown verdict ${String(never)}`);
    }
  }
}

/**
 * C's printf("%0.2f", x) as glibc prints it: the nearest 2-decimal value of
 * x's exact value, an exact tie to even. toFixed takes the larger on a tie
 * (1/32 = 3.125% is "3.13" there, "3.12" in qemu-img). A double is exactly
 * halfway between two hundredths only when 8x is an odd integer.
 */
export function printfFixed2(x: number): string {
  if (!Number.isInteger(x * 8) || Math.abs(x * 8) % 2 !== 1) return x.toFixed(2);
  const below = Math.floor(x * 100);
  return ((below % 2 === 0 ? below : below + 1) / 100).toFixed(2);
}

/** qemu-img check's human report (qemu-img.c dump_human_image_check). */
export function formatHuman(r: CheckReport): string[] {
  const lines: string[] = [];
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) lines.push('No errors were found on the image.');
  if (r.corruptions > 0) lines.push('', `${r.corruptions} errors were found on the image.`, 'Data may be corrupted, or further writes to the image may corrupt it.');
  if (r.leaks > 0) lines.push('', `${r.leaks} leaked clusters were found on the image.`, 'This means waste of disk space, but no harm to data.');
  if (r.checkErrors > 0) lines.push('', `${r.checkErrors} internal errors have occurred during the check.`);
  const total = r.totalClusters ?? 0;
  const allocated = r.allocatedClusters ?? 0;
  if (total > 0 && allocated > 0) {
    const pct = (n: number, of: number) => printfFixed2((n * 100) / of);
    lines.push(`${allocated}/${total} = ${pct(allocated, total)}% allocated, ${pct(r.fragmentedClusters ?? 0, allocated)}% fragmented, ${pct(r.compressedClusters ?? 0, allocated)}% compressed clusters`);
  }
  if (r.imageEndOffset) lines.push(`Image end offset: ${r.imageEndOffset}`);
  return lines;
}

/** The model cannot name the file: "Could not open: …" becomes the engine's "could not open 'FILE': …". */
function failureLine(file: string, failure: string): string {
  const openFailure = 'Could not open: ';
  return failure.startsWith(openFailure) ? `could not open '${file}': ${failure.slice(openFailure.length)}` : `${file}: ${failure}`;
}

/**
 * `check` as qemu-img check runs it: the image's backing chain must open
 * (qemu-img check opens it, and exits 1 with "Could not open backing file"
 * when it cannot), then the model's checker judges the image alone.
 */
export async function runCheckWithChain(file: string, options: CheckCommandOptions, out: (line: string) => void, err: (line: string) => void): Promise<ExitCode> {
  const report = checkFile(file, options);
  if (report.backingFile !== undefined) {
    try {
      const layer = await Qcow2Image.openBackingFile(file, report.backingFile, report.backingFormat);
      await layer.close();
    } catch (error) {
      if (error instanceof Qcow2Error) throw new CliError(`could not open '${file}': ${error.message}`, exitCodes.checkNotCompleted);
      throw error;
    }
  }
  return printReport(report, file, options, out, err);
}

/** The checker on the image alone (its backing file is not opened). */
export function runCheck(file: string, options: CheckCommandOptions, out: (line: string) => void, err: (line: string) => void): ExitCode {
  return printReport(checkFile(file, options), file, options, out, err);
}

/** The model's checker on a file, with qemu-img check's open errors and locks. Throws CliError, also when the checker could not check. */
function checkFile(file: string, options: CheckCommandOptions): CheckReport {
  if (options.format !== undefined && options.format !== 'qcow2') throw new CliError(`check: format '${options.format}': ${noChecks} (only qcow2)`, exitCodes.checkUnsupported);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw new CliError(`could not open '${file}': ${(error as Error).message}`, exitCodes.checkNotCompleted);
  }
  let report: CheckReport;
  try {
    if (!fstatSync(fd).isFile()) throw new CliError(`could not open '${file}': not a regular file`, exitCodes.checkNotCompleted);
    // A reader's locks, as qemu-img check takes them: refused while someone writes.
    lockImageFile(fd, file, imageLockPerms({ readOnly: true, forceShare: options.forceShare }));
    const reader = fileReader(fd);
    if (options.format === undefined && !probesAsQcow2(reader)) throw new CliError(`'${file}' is not a qcow2 image: ${noChecks}`, exitCodes.checkUnsupported);
    report = checkImage(reader);
  } catch (error) {
    if (error instanceof Qcow2Error) throw new CliError(`could not open '${file}': ${error.message}`, exitCodes.checkNotCompleted);
    throw error;
  } finally {
    closeSync(fd);
  }
  if (report.failure !== undefined) throw new CliError(failureLine(file, report.failure), exitCodes.checkNotCompleted);
  return report;
}

function printReport(report: CheckReport, file: string, options: CheckCommandOptions, out: (line: string) => void, err: (line: string) => void): ExitCode {
  for (const message of report.messages) err(message);
  if (options.output === 'json') out(JSON.stringify(checkReportJson(report, file), null, 4));
  else for (const line of formatHuman(report)) out(line);
  return exitCodeOf(report);
}

/** compare_refcounts' line for a referenced cluster counted 0, which makes QEMU rebuild the refcount structures. */
const countedZero = /^ERROR cluster \d+ refcount=0 reference=[1-9]/;
/** check_oflag_copied's line for a COPIED flag that disagrees with the count. */
const copiedLine = /^ERROR OFLAG_COPIED /;

/**
 * `check -r leaks|all` (qemu-img check -r): check; when there are leaks or
 * corruptions, print what the check found, open the image read-write and
 * rebuild its refcounts (Qcow2Image.repair: `leaks` lowers counts above their
 * references, `all` also raises those below and fixes COPIED flags), print
 * each repaired cluster and qemu-img's summary, then check again and report
 * that check (its verdict is the exit code). Throws CliError when the image
 * cannot be opened for writing (locked, or refused as damaged), and with
 * `leaks` when a referenced cluster is counted 0 (qemu-img: "need to rebuild
 * refcount structures", "Check failed", exit 1). Where QEMU's `-r all` rebuilds
 * the refcount structures at the end of the file, this repairs them in place:
 * the same summary, but a smaller image end offset and `Repairing cluster N
 * refcount=0 …` where QEMU prints `Rebuilding refcount structure` and repairs
 * the old structures it left (docs/qemu-findings.md).
 */
export async function runCheckRepair(
  file: string,
  options: CheckCommandOptions,
  mode: RepairMode,
  out: (line: string) => void,
  err: (line: string) => void,
): Promise<ExitCode> {
  const before = checkFile(file, options);
  if (before.leaks === 0 && before.corruptions === 0) return printReport(before, file, options, out, err);
  // A referenced cluster counted 0: QEMU must rebuild the refcount structures, which only -r all may do.
  const rebuild = before.messages.some((m) => countedZero.test(m));
  // Then QEMU fails or rebuilds before check_oflag_copied, which never sees the stale counts.
  for (const message of before.messages) if (!(rebuild && copiedLine.test(message))) err(message);
  if (mode === 'leaks' && rebuild) {
    err('ERROR need to rebuild refcount structures');
    throw new CliError('Check failed: Input/output error', exitCodes.checkNotCompleted);
  }
  let result: RepairResult;
  try {
    const image = await Qcow2Image.openFile(file);
    try {
      result = await image.repair(mode);
    } finally {
      await image.close();
    }
  } catch (error) {
    if (error instanceof Qcow2Error) throw new CliError(`could not repair '${file}': ${error.message}`, exitCodes.checkNotCompleted);
    throw error;
  }
  for (const fix of [...result.leaks, ...result.corruptions].sort((a, b) => a.cluster - b.cluster)) {
    err(`Repairing cluster ${fix.cluster} refcount=${fix.refcount} reference=${fix.reference}`);
  }
  const after = checkFile(file, options);
  if (options.output === 'human') {
    out('The following inconsistencies were found and repaired:');
    out('');
    out(`    ${result.leaks.length} leaked clusters`);
    out(`    ${result.corruptions.length + result.copiedFixed} corruptions`);
    out('');
    out('Double checking the fixed image now...');
  }
  return printReport(after, file, options, out, () => undefined);
}
