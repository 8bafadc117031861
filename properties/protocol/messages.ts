// The adapter protocol's messages (docs/protocol.md): one JSON object per line,
// requests from the gate on the implementation's stdin, answers on its stdout.
// The operations are the model's own (model/ops.ts): `requestForOp` is the one
// place that turns an Op into a request, with an exhaustive switch, so a new op
// kind in the model fails to compile here until the protocol says how it
// travels. Guest bytes travel as base64, or through a file the gate names when
// they are larger than inlineDataBytesMax.
import { compressedWriteBytes, opKinds, writeBytes, type ImageOptions, type Op, type OpErrorKind, type OpKind } from '../../model/index.js';

/** Bumped when a message changes meaning; the handshake names it and the gate refuses other versions. */
export const protocolVersion = 1;

/** Guest bytes up to this many travel inside the JSON line (base64); larger ones through a file. */
export const inlineDataBytesMax = 1024 * 1024;

/** The session requests around the model's operations. */
export const sessionRequestNames = ['hello', 'create', 'open', 'read', 'close', 'quit'] as const;
export type SessionRequestName = (typeof sessionRequestNames)[number];

/** Every request name: the session's and the model's op kinds. */
export type RequestName = SessionRequestName | OpKind;
export const requestNames: readonly RequestName[] = [...sessionRequestNames, ...opKinds];

/** Guest bytes in a request or an answer: inline base64, or the path of a file holding exactly them. */
export type DataField = { readonly data: string } | { readonly dataFile: string };

/** A request without its id (the session numbers them). */
export type Request =
  | { readonly op: 'hello'; readonly protocol: number }
  | {
      readonly op: 'create';
      readonly path: string;
      readonly options: ImageOptions;
      /** An overlay (qemu-img create -b -F): the backing file's name, relative to the image's directory, and its format. */
      readonly backingFile?: string;
      readonly backingFormat?: BackingFormat;
    }
  | { readonly op: 'open'; readonly path: string; readonly readOnly: boolean }
  | { readonly op: 'read'; readonly offset: number; readonly length: number; readonly toFile?: string }
  | { readonly op: 'close' }
  | { readonly op: 'quit' }
  | OpRequest;

export type OpRequest =
  | ({ readonly op: 'write' | 'writeCompressed'; readonly offset: number; readonly length: number } & DataField)
  | { readonly op: 'writeZeroes'; readonly offset: number; readonly length: number; readonly unmap: boolean }
  | { readonly op: 'discard'; readonly offset: number; readonly length: number }
  | { readonly op: 'resize'; readonly size: number }
  | { readonly op: 'snapshotCreate' | 'snapshotRevert' | 'snapshotDelete'; readonly name: string }
  | { readonly op: 'flush' }
  | { readonly op: 'reopen' }
  | { readonly op: 'rebase'; readonly backingFile: string | null; readonly backingFormat?: BackingFormat; readonly unsafe: boolean }
  | { readonly op: 'commit' };

/** The formats a backing file of a chain has. */
export type BackingFormat = 'qcow2' | 'raw';

/**
 * The rebase request onto `target` (a file of the chain by the name the image
 * stores, or none for `-b ''`): `qemu-img rebase [-u] -b NAME -F FORMAT`.
 */
export function rebaseRequest(target: { readonly name: string; readonly format: BackingFormat } | undefined, unsafe: boolean): OpRequest {
  return target === undefined ? { op: 'rebase', backingFile: null, unsafe } : { op: 'rebase', backingFile: target.name, backingFormat: target.format, unsafe };
}

/**
 * The error codes an answer may carry: the model's refusals (OpErrorKind), and
 * `failed` / `assertion` for anything that is not a refusal (an I/O error, an
 * internal invariant of the implementation): always a finding.
 */
export const answerErrorCodes = [
  'out-of-range',
  'invalid-argument',
  'unknown-snapshot',
  'unsupported',
  'refcount-overflow',
  'compressed-overwrite',
  'io',
  'failed',
  'assertion',
] as const satisfies readonly (OpErrorKind | 'failed' | 'assertion')[];
export type AnswerErrorCode = (typeof answerErrorCodes)[number];
// every refusal the model knows can travel: a new OpErrorKind fails to compile here until it is listed above
const _everyOpErrorKind: [Exclude<OpErrorKind, AnswerErrorCode>] extends [never] ? true : never = true;

export type Answer =
  | { readonly id: number; readonly ok: true; readonly body: Readonly<Record<string, unknown>> }
  | { readonly id: number; readonly ok: false; readonly error: AnswerErrorCode; readonly message: string };

/** A line on stdout that is not a well-formed answer. */
export class AnswerFormatError extends Error {
  override readonly name = 'AnswerFormatError';
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * The request for one model op. `spill(bytes)` is called for write data longer
 * than inlineDataBytesMax and returns the path of a file it wrote them to.
 */
export async function requestForOp(op: Op, spill: (bytes: Uint8Array) => Promise<string>): Promise<OpRequest> {
  const data = async (bytes: Uint8Array): Promise<DataField> => (bytes.length > inlineDataBytesMax ? { dataFile: await spill(bytes) } : { data: base64(bytes) });
  switch (op.kind) {
    case 'write':
      return { op: op.kind, offset: op.offset, length: op.length, ...(await data(writeBytes(op))) };
    case 'writeCompressed':
      return { op: op.kind, offset: op.offset, length: op.length, ...(await data(compressedWriteBytes(op))) };
    case 'writeZeroes':
      return { op: op.kind, offset: op.offset, length: op.length, unmap: op.unmap };
    case 'discard':
      return { op: op.kind, offset: op.offset, length: op.length };
    case 'resize':
      return { op: op.kind, size: op.size };
    case 'snapshotCreate':
    case 'snapshotRevert':
    case 'snapshotDelete':
      return { op: op.kind, name: op.name };
    case 'flush':
    case 'reopen':
      return { op: op.kind };
    case 'commit':
      return { op: op.kind };
    case 'createOverlay':
    case 'rebase':
      // they name files of the chain, which the driver lays out (drivers/command.ts): it builds their requests
      throw new Error(`${op.kind} is not one request: the command driver sends it (close, move, create with a backing file; rebaseRequest)`);
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** Bytes from an inline base64 field; AnswerFormatError when the field is not base64 of exactly `length` bytes. */
export function decodeData(text: unknown, length: number): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new AnswerFormatError(`field data is not base64 (${JSON.stringify(text)?.slice(0, 40)})`);
  }
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (bytes.length !== length) throw new AnswerFormatError(`field data holds ${bytes.length} bytes, the read asked for ${length}`);
  return bytes;
}

/** Encodes one request as its line (no newline). */
export function encodeRequest(id: number, request: Request): string {
  return JSON.stringify({ id, ...request });
}

/**
 * Parses one answer line. Throws AnswerFormatError for anything that is not an
 * object with an integer `id` and a boolean `ok`, or a refusal without a known
 * `error` code and a string `message`.
 */
export function parseAnswer(line: string): Answer {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new AnswerFormatError('not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AnswerFormatError('not a JSON object');
  const o = value as Record<string, unknown>;
  if (!Number.isSafeInteger(o.id)) throw new AnswerFormatError(`field id is ${JSON.stringify(o.id)}, expected an integer`);
  const id = o.id as number;
  if (o.ok === true) return { id, ok: true, body: o };
  if (o.ok !== false) throw new AnswerFormatError(`field ok is ${JSON.stringify(o.ok)}, expected true or false`);
  if (!(answerErrorCodes as readonly unknown[]).includes(o.error)) {
    throw new AnswerFormatError(`field error is ${JSON.stringify(o.error)}, expected one of ${answerErrorCodes.join(', ')}`);
  }
  const message = typeof o.message === 'string' ? o.message : '';
  return { id, ok: false, error: o.error as AnswerErrorCode, message };
}
