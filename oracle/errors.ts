// Typed errors of the QEMU oracle. A tool that runs and answers "no" is a verdict
// (qemu-img check exit 2, compare exit 1) and never lands here; these are for a
// tool that is missing, failed to do what was asked, or printed something we
// cannot read. Each carries what a user needs to reproduce it by hand.

export type QemuTool = 'qemu-img' | 'qemu-io';

/** The Debian package that provides every QEMU tool the oracle runs. */
export const qemuDebianPackage = 'qemu-utils';

/** Why a configured binary (QEMU_IMG, QEMU_IO or a flag that sets them) cannot be used, or a binary on PATH is not the tool. */
export interface QemuBinaryProblem {
  /** The environment variable that named it; absent for a binary found on PATH. */
  readonly variable?: string;
  /** The absolute path that was tried. */
  readonly path: string;
  readonly reason: string;
}

/**
 * The oracle cannot run a QEMU tool (instead of a raw ENOENT from spawn): it
 * is not on PATH, or the binary configured for it (`problem`) is missing or
 * is not that tool. Either way no verdict can be given.
 */
export class QemuMissingError extends Error {
  override readonly name = 'QemuMissingError';
  constructor(
    readonly tool: QemuTool,
    readonly problem?: QemuBinaryProblem,
  ) {
    super(
      problem === undefined
        ? `${tool} not found on PATH; install Debian package ${qemuDebianPackage}`
        : `${problem.variable === undefined ? problem.path : `${problem.variable}=${problem.path}`}: ${problem.reason}`,
    );
  }
}

/**
 * The errno names QEMU's messages can carry, recovered from the strerror text it
 * prints ("write failed: Input/output error"). Only names we can map exactly.
 */
export type QemuErrno =
  | 'EIO'
  | 'EINVAL'
  | 'ENOTSUP'
  | 'ENOSPC'
  | 'EACCES'
  | 'EPERM'
  | 'ENOENT'
  | 'EFBIG'
  | 'EROFS'
  | 'ENOMEM'
  | 'ERANGE'
  | 'EEXIST'
  | 'EBUSY'
  | 'E2BIG';

// glibc strerror texts (Debian is glibc): the only place QEMU's errno survives.
const strerrorTexts: ReadonlyArray<readonly [string, QemuErrno]> = [
  ['Input/output error', 'EIO'],
  ['Invalid argument', 'EINVAL'],
  ['Operation not supported', 'ENOTSUP'],
  ['No space left on device', 'ENOSPC'],
  ['Permission denied', 'EACCES'],
  ['Operation not permitted', 'EPERM'],
  ['No such file or directory', 'ENOENT'],
  ['File too large', 'EFBIG'],
  ['Read-only file system', 'EROFS'],
  ['Cannot allocate memory', 'ENOMEM'],
  ['Numerical result out of range', 'ERANGE'],
  ['File exists', 'EEXIST'],
  ['Device or resource busy', 'EBUSY'],
  ['Argument list too long', 'E2BIG'],
];

/** The errno named by a QEMU message, if it ends in (or contains) a strerror text. */
export function errnoFromMessage(message: string): QemuErrno | undefined {
  for (const [text, errno] of strerrorTexts) {
    if (message.includes(text)) return errno;
  }
  return undefined;
}

/** A qemu-io command failed ("write failed: Input/output error"). */
export class QemuIoError extends Error {
  override readonly name = 'QemuIoError';
  readonly errno: QemuErrno | undefined;
  constructor(
    /** The command line sent to qemu-io, e.g. `write -q -P 0xab 0x0 0x200`. */
    readonly command: string,
    /** What qemu-io printed for it, trimmed. */
    readonly detail: string,
  ) {
    super(`qemu-io: ${command}: ${detail}`);
    this.errno = errnoFromMessage(detail);
  }
}

/** A qemu-img subcommand exited with a failure where a result was expected. */
export class QemuImgError extends Error {
  override readonly name = 'QemuImgError';
  readonly errno: QemuErrno | undefined;
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number,
    /** stderr, trimmed (qemu-img prefixes its messages with "qemu-img: "). */
    readonly detail: string,
  ) {
    super(`qemu-img ${args.join(' ')} exited ${exitCode}: ${detail}`);
    this.errno = errnoFromMessage(detail);
  }
}

/** A tool printed output the oracle cannot parse, or broke its own protocol. */
export class QemuOutputError extends Error {
  override readonly name = 'QemuOutputError';
  constructor(
    readonly tool: QemuTool,
    readonly command: string,
    readonly reason: string,
    /** The first part of the offending output. */
    readonly output: string,
  ) {
    super(`${tool} ${command}: ${reason}: ${JSON.stringify(output.slice(0, outputExcerptChars))}`);
  }
}

/** How much offending output an error message quotes. */
const outputExcerptChars = 400;
