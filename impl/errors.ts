// Typed operating errors of the engine (style.md §5): bad images, bad arguments
// and I/O failures. Broken internal invariants are assertions (assert.ts), never these.

/**
 * The first six codes and 'io' are exactly model/ops.ts's OpErrorKind and are used in the
 * situations docs/semantics.md names; the rest describe images and I/O.
 */
export type Qcow2ErrorCode =
  | 'out-of-range'
  | 'invalid-argument'
  | 'unknown-snapshot'
  | 'unsupported'
  | 'refcount-overflow'
  | 'compressed-overwrite'
  | 'format'
  | 'read-only'
  | 'corrupt'
  | 'io'
  | 'locked';

export class Qcow2Error extends Error {
  readonly code: Qcow2ErrorCode;
  constructor(code: Qcow2ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Qcow2Error';
    this.code = code;
  }
}

/**
 * A header or table field outside what the format (or QEMU) allows. `offset` is
 * the byte position of the field itself (a header field's position in the
 * header, an entry's position in the file), never the position of what it
 * points to: the message reads "invalid FIELD at byte N: VALUE (LIMIT)".
 */
export class Qcow2FormatError extends Qcow2Error {
  readonly field: string;
  readonly value: string;
  readonly limit: string;
  readonly offset?: number;
  /**
   * `options.summary` replaces the leading "invalid FIELD" (e.g. "unsupported
   * incompatible_features"), `options.code` the code 'format' (an 'unsupported'
   * feature is not a damaged image).
   */
  constructor(field: string, value: bigint | number | string, limit: string, offset?: number, options: { summary?: string; code?: 'format' | 'unsupported' } = {}) {
    const where = offset === undefined ? '' : ` at byte ${offset}`;
    super(options.code ?? 'format', `${options.summary ?? `invalid ${field}`}${where}: ${String(value)} (${limit})`);
    this.name = 'Qcow2FormatError';
    this.field = field;
    this.value = String(value);
    this.limit = limit;
    if (offset !== undefined) this.offset = offset;
  }
}

/**
 * Another process holds the image in a way that conflicts with ours: one of
 * QEMU's permission lock bytes (impl/io/file-lock.ts) is held. The message
 * keeps QEMU's words (`Failed to get "write" lock`, `Failed to get shared
 * "write" lock`) and adds the byte and the file.
 */
export class Qcow2LockError extends Qcow2Error {
  /** QEMU's name of the permission ('consistent read', 'write', 'write unchanged', 'resize'). */
  readonly permission: string;
  /** The lock byte found held (100 + bit: someone uses it; 200 + bit: someone refuses to share it). */
  readonly byte: number;
  constructor(path: string, permission: string, byte: number, othersUse: boolean) {
    const what = othersUse ? `shared "${permission}"` : `"${permission}"`;
    super(
      'locked',
      `Failed to get ${what} lock: byte ${byte} of '${path}' is locked by another process ` +
        '(is another process using the image?)',
    );
    this.name = 'Qcow2LockError';
    this.permission = permission;
    this.byte = byte;
  }
}

/** Convert a 64-bit on-disk value to a number, refusing (never rounding) past 2^53. */
export function toSafeNumber(value: bigint, field: string, offset?: number, note?: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Qcow2FormatError(field, value, `at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1)${note === undefined ? '' : `; ${note}`}`, offset);
  }
  return Number(value);
}

/**
 * When a damaged table entry is reported (style.md §5). `at-open` refuses the
 * image as it opens: a read-write open, since an image that failed validation is
 * never written to. `on-access` keeps the entry and reports the fault on the read
 * that uses it, as QEMU does (qcow2_do_open loads the L1, refcount and snapshot
 * tables without looking at their entries): a read-only open.
 */
export type FaultPolicy = 'at-open' | 'on-access';

/** Appended to an at-open refusal of something QEMU reports only on access. */
export const stricterThanQemu = 'read-write open refuses it before any write; a read-only open reports it on access, as QEMU does';

/**
 * A read-write open of an image with persistent dirty bitmaps: the engine does
 * not update bitmaps, so writing would silently make them stale. Carries the names.
 */
export class Qcow2BitmapsError extends Qcow2Error {
  readonly names: readonly string[];
  constructor(names: readonly string[]) {
    super(
      'unsupported',
      `the image has persistent dirty bitmaps (${names.map((n) => `'${n}'`).join(', ')}) that this engine cannot update; ` +
        'writing would leave them inconsistent, so QEMU would discard them',
    );
    this.name = 'Qcow2BitmapsError';
    this.names = names;
  }
}
