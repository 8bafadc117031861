// One interface for every implementation the properties judge (our engine, QEMU,
// the canary), so the same command sequence and the same checks run against each.
// A driver speaks the model's language: it takes an `Op` and answers an `Outcome`
// whose error kinds are the model's OpErrorKind. Anything it cannot map is not a
// refusal but a divergence, and surfaces as an ImplementationError with the raw
// message (the model never throws for a well-formed op).
import type { ImageInfo, MapEntry } from '../impl/index.js';
import type { ImageOptions, Op, OpErrorKind, Outcome } from '../model/index.js';

/** The implementations built in (`--impl`); any other is a program speaking docs/protocol.md, named `cmd:<command line>`. */
export const implNames = ['ts', 'qemu', 'canary'] as const;
export type BuiltinImplName = (typeof implNames)[number];
export type CommandImplName = `cmd:${string}`;
export type ImplName = BuiltinImplName | CommandImplName;

export function isBuiltinImplName(name: string): name is BuiltinImplName {
  return (implNames as readonly string[]).includes(name);
}

export function isCommandImplName(name: string): name is CommandImplName {
  return name.startsWith('cmd:') && name.slice('cmd:'.length).trim() !== '';
}

/** Whether `name` names an implementation: a built-in one, or `cmd:` and a non-empty command line. */
export function isImplName(name: string): name is ImplName {
  return isBuiltinImplName(name) || isCommandImplName(name);
}

export interface ImageDriver {
  /** Human name for reports, e.g. "ts engine (MemoryFile)". */
  readonly name: string;
  /** Applies one operation. Refusals come back as `{ ok: false }`; other failures throw ImplementationError. */
  apply(op: Op): Promise<Outcome>;
  /** Guest read; `offset + length` must be within the current virtual size. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** The image file's bytes after a flush (what `decodeImage` and `qemu-img` see). */
  imageBytes(): Promise<Uint8Array>;
  /** The image file's length in bytes as it is now, without flushing (the space check). */
  fileLength(): Promise<number>;
  /** Writes the flushed image to `path` so that QEMU can judge it. */
  writeTo(path: string): Promise<void>;
  /**
   * What the implementation itself reports about the open image: the map
   * entries `qcow2-verify map` prints and the info `qcow2-verify info` prints.
   * Only our engine has them (QEMU's map is judged through qemu-img map).
   */
  reports?(): Promise<EngineReports>;
  /**
   * The backing files `writeTo` puts next to the image, nearest first, by file
   * name and format (absent or empty: the image has no backing file).
   */
  backingChain?(): readonly { readonly name: string; readonly format: 'qcow2' | 'raw' }[];
  /**
   * The bytes of those backing files as they are now, nearest first (the
   * structure and space checks judge every layer of the chain). Backing files
   * are closed between ops except during `commit`, so they need no flush.
   */
  backingFileBytes?(): Promise<readonly Uint8Array[]>;
  /** Releases the image (and any process behind it). Idempotent. */
  close(): Promise<void>;
}

export interface EngineReports {
  readonly map: readonly MapEntry[];
  readonly info: ImageInfo;
  /**
   * `info --backing-chain` below the top: the info of each backing file of
   * `backingChain`, nearest first, each opened alone as qemu-img info opens
   * it; undefined for a raw file. Absent or empty without a chain.
   */
  readonly backingInfo?: readonly (ImageInfo | undefined)[];
}

/** A driver that has its own reports (our engine, and the canary built on it). */
export type ReportingDriver = ImageDriver & { reports(): Promise<EngineReports> };

export type DriverFactory = (options: ImageOptions) => Promise<ImageDriver>;

const opErrorKinds: ReadonlySet<string> = new Set<OpErrorKind>([
  'out-of-range',
  'invalid-argument',
  'unknown-snapshot',
  'unsupported',
  'refcount-overflow',
  'compressed-overwrite',
  'io',
]);

export function isOpErrorKind(code: string): code is OpErrorKind {
  return opErrorKinds.has(code);
}

/**
 * An implementation failed in a way that is not one of the model's refusals:
 * an unmapped error, an internal assertion, a crash. Always a finding.
 */
export class ImplementationError extends Error {
  override readonly name = 'ImplementationError';
  constructor(
    readonly driver: string,
    readonly operation: string,
    readonly rawMessage: string,
    /** The implementation's own invariant broke (AssertionError): a crash, not a wrong answer. */
    readonly assertion: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${driver}: ${operation} failed: ${rawMessage}`, options);
  }
}

/**
 * A guest read that ran past the end of the implementation's disk: the disk
 * is shorter than the range read (`needed` bytes from guest offset 0, `found`
 * there). Not a harness error: the guest disk has the wrong size, which the
 * check that read turns into a typed data violation (checks/guest-read.ts).
 */
export class GuestDiskShortError extends Error {
  override readonly name = 'GuestDiskShortError';
  constructor(
    /** The read, e.g. `read 0x0 0x200000`. */
    readonly operation: string,
    /** Bytes the read needs: its offset plus its length. */
    readonly needed: number,
    /** The implementation's virtual size. */
    readonly found: number,
  ) {
    super(`${operation}: the guest disk has ${found} bytes, the read needs ${needed}`);
  }
}

/** Wraps anything thrown by an implementation into an ImplementationError (a GuestDiskShortError stays what it is). */
export function implementationError(driver: string, operation: string, error: unknown): ImplementationError | GuestDiskShortError {
  if (error instanceof ImplementationError || error instanceof GuestDiskShortError) return error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const assertion = error instanceof Error && error.name === 'AssertionError';
  return new ImplementationError(driver, operation, message, assertion, { cause: error });
}

export const okOutcome: Outcome = { ok: true };

export function refused(error: OpErrorKind, message: string): Outcome {
  return { ok: false, error, message };
}
