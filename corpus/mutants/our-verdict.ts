// Our side of a malformed-image verdict, computed in-process with a budget:
// the engine opens the mutant read-only (or refuses it with a typed error),
// reads the disk, and the model's checker classifies it. Everything thrown is
// sorted into typed (a Qcow2Error or the model's DecodeError: a clean refusal),
// assertion (an engine invariant broke: a finding of its own) and untyped
// (anything else: a crash, always a finding). Runs inside the watchdog worker.
import { Qcow2Error, Qcow2FormatError, Qcow2Image, MemoryFile } from '../../impl/index.js';
import { bufferReader, checkImage, DecodeError } from '../../model/index.js';

export type Thrown =
  | { readonly kind: 'typed'; readonly name: string; readonly code: string; readonly message: string; readonly field?: string }
  | { readonly kind: 'assertion'; readonly message: string }
  | { readonly kind: 'untyped'; readonly name: string; readonly message: string; readonly stack?: string };

export type CheckClass = 'clean' | 'leaks' | 'corrupt' | 'cannot-check';

export interface OurVerdict {
  readonly open: { readonly ok: true; readonly virtualSize: number } | { readonly ok: false; readonly error: Thrown };
  /** Absent when the engine refused to open. */
  readonly read?: { readonly ok: true; readonly bytesRead: number } | { readonly ok: false; readonly error: Thrown };
  readonly check:
    | { readonly ok: true; readonly verdict: CheckClass; readonly corruptions: number; readonly leaks: number; readonly reason?: string }
    | { readonly ok: false; readonly error: Thrown };
}

/** The phase a verdict is in, reported to the watchdog so a hang names where it hung. */
export type Phase = 'open' | 'read' | 'check';

/**
 * Reads stop after this many bytes (a mutated `size` can claim exabytes); the
 * last chunk of the disk is read too, so the far end of the L1 is exercised.
 */
export const readBytesMax = 64 * 1024 * 1024;
const readChunkBytes = 1024 * 1024;

export function classify(error: unknown): Thrown {
  if (error instanceof Qcow2FormatError) return { kind: 'typed', name: error.name, code: error.code, message: error.message, field: error.field };
  if (error instanceof Qcow2Error) return { kind: 'typed', name: error.name, code: error.code, message: error.message };
  if (error instanceof DecodeError) return { kind: 'typed', name: error.name, code: `decode:${error.field}`, message: error.message, field: error.field };
  if (error instanceof Error && error.name === 'AssertionError') return { kind: 'assertion', message: error.message };
  if (error instanceof Error) return { kind: 'untyped', name: error.name, message: error.message, ...(error.stack === undefined ? {} : { stack: error.stack }) };
  return { kind: 'untyped', name: typeof error, message: String(error) };
}

async function readDisk(image: Qcow2Image): Promise<number> {
  const size = image.virtualSize;
  const ranges: Array<[number, number]> = [];
  for (let at = 0; at < Math.min(size, readBytesMax); at += readChunkBytes) ranges.push([at, Math.min(readChunkBytes, size - at)]);
  if (size > readBytesMax) {
    const lastStart = Math.max(readBytesMax, size - readChunkBytes);
    ranges.push([lastStart, size - lastStart]);
  }
  let bytesRead = 0;
  for (const [offset, length] of ranges) {
    const data = await image.read(offset, length);
    if (data.length !== length) throw new Error(`read(${offset}, ${length}) returned ${data.length} bytes`);
    bytesRead += length;
  }
  return bytesRead;
}

export async function ourVerdict(bytes: Uint8Array, onPhase: (phase: Phase) => void = () => {}): Promise<OurVerdict> {
  onPhase('open');
  let image: Qcow2Image | undefined;
  let open: OurVerdict['open'];
  try {
    // The mutant alone, as qemu-img info opens it: a (garbage) backing name is not followed.
    image = await Qcow2Image.open(new MemoryFile(bytes.slice()), { readOnly: true, backing: false });
    open = { ok: true, virtualSize: image.virtualSize };
  } catch (error) {
    open = { ok: false, error: classify(error) };
  }
  let read: OurVerdict['read'];
  if (image !== undefined) {
    onPhase('read');
    try {
      read = { ok: true, bytesRead: await readDisk(image) };
    } catch (error) {
      read = { ok: false, error: classify(error) };
    }
    await image.close().catch(() => undefined);
  }
  onPhase('check');
  let check: OurVerdict['check'];
  try {
    const report = checkImage(bufferReader(bytes));
    const reason = report.verdict === 'cannot-check' ? report.messages[0] : undefined;
    check = { ok: true, verdict: report.verdict, corruptions: report.corruptions, leaks: report.leaks, ...(reason === undefined ? {} : { reason }) };
  } catch (error) {
    const thrown = classify(error);
    // A DecodeError escaping the checker still means "cannot check this image": a clean refusal.
    check = thrown.kind === 'typed' ? { ok: true, verdict: 'cannot-check', corruptions: 0, leaks: 0, reason: thrown.message } : { ok: false, error: thrown };
  }
  return { open, ...(read === undefined ? {} : { read }), check };
}
