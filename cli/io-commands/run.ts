import { Qcow2Error, type Qcow2ErrorCode } from '../../impl/errors.js';
import type { IoCommand } from './command.js';

/** The part of Qcow2Image that qemu-io commands drive (structural, so tests may wrap it). */
export interface IoImage {
  readonly virtualSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  writeCompressed(offset: number, data: Uint8Array): Promise<void>;
  writeZeroes(offset: number, length: number, options?: { unmap?: boolean }): Promise<void>;
  discard(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
  resize(newSize: number): Promise<void>;
}

export interface IoRunSummary {
  readonly executed: number;
  readonly failed: number;
}

/**
 * Guest data moves in pieces of at most this many bytes, aligned to multiples
 * of it, so a 2 GiB `write -P` needs a 4 MiB buffer, not 2 GiB. Every cluster
 * size (≤ 2 MiB) divides it, so no cluster is split between two pieces.
 */
export const ioChunkBytes = 4 << 20;

/**
 * Refusals that leave the image unchanged (docs/semantics.md): qemu-io prints
 * "<cmd> failed: …" and goes on with the next command, and so do we. Anything
 * else (a damaged image, an I/O error, a broken engine assertion) stops the
 * script and propagates.
 */
const refusedCodes: ReadonlySet<Qcow2ErrorCode> = new Set<Qcow2ErrorCode>([
  'out-of-range', 'invalid-argument', 'unknown-snapshot', 'unsupported', 'refcount-overflow', 'compressed-overwrite', 'read-only',
]);

/**
 * A read that meets damage (a corrupt L2 offset or compressed stream, an I/O
 * error) changes nothing: qemu-io prints "read failed: Input/output error" and
 * goes on with the next command, and so do we, with the fault's own words.
 */
const readFaultCodes: ReadonlySet<Qcow2ErrorCode> = new Set<Qcow2ErrorCode>(['corrupt', 'io']);

/** Runs the commands in order, printing qemu-io's result lines (without its timing line). */
export async function runIoCommands(
  image: IoImage,
  commands: readonly IoCommand[],
  print: (line: string) => void,
): Promise<IoRunSummary> {
  let failed = 0;
  for (const command of commands) {
    const verb = command.kind === 'writeZeroes' ? 'write' : command.kind;
    try {
      const line = await runOne(image, command);
      if (line !== undefined) print(line);
    } catch (error) {
      if (error instanceof PatternMismatch) {
        print(error.message);
        // qemu-io still reports the read itself after a failed verification (unless -q)
        if (error.readLine !== undefined) print(error.readLine);
      } else if (error instanceof Qcow2Error && (refusedCodes.has(error.code) || (command.kind === 'read' && readFaultCodes.has(error.code)))) {
        print(`${verb} failed: ${error.message} (${error.code})`);
      } else {
        throw error;
      }
      failed++;
    }
  }
  return { executed: commands.length, failed };
}

class PatternMismatch extends Error {
  constructor(
    message: string,
    /** qemu-io's `read N/N bytes at offset M`, printed after the mismatch; absent with -q. */
    readonly readLine: string | undefined,
  ) {
    super(message);
  }
}

function readLine(length: number, offset: number): string {
  return `read ${length}/${length} bytes at offset ${offset}`;
}

async function runOne(image: IoImage, command: IoCommand): Promise<string | undefined> {
  switch (command.kind) {
    case 'write':
      checkRange(image, command.offset, command.length);
      for (const [at, length] of pieces(command.offset, command.length)) {
        const data = new Uint8Array(length).fill(command.pattern);
        await (command.compressed === true ? image.writeCompressed(at, data) : image.write(at, data));
      }
      return command.quiet ? undefined : `wrote ${command.length}/${command.length} bytes at offset ${command.offset}`;
    case 'writeZeroes':
      if (command.length === 0) checkRange(image, command.offset, 0);
      if (command.length > 0) await image.writeZeroes(command.offset, command.length, { unmap: command.unmap });
      return command.quiet ? undefined : `wrote ${command.length}/${command.length} bytes at offset ${command.offset}`;
    case 'read':
      checkRange(image, command.offset, command.length);
      for (const [at, length] of pieces(command.offset, command.length)) {
        const bytes = await image.read(at, length);
        if (command.pattern === undefined) continue;
        const index = firstMismatch(bytes, command.pattern);
        if (index >= 0) {
          const hex = (n: number) => `0x${n.toString(16).padStart(2, '0')}`;
          throw new PatternMismatch(
            `Pattern verification failed at offset ${at + index}: expected ${hex(command.pattern)}, found ${hex(bytes[index] ?? 0)} ` +
              `(read of ${command.length} bytes at offset ${command.offset})`,
            command.quiet ? undefined : readLine(command.length, command.offset),
          );
        }
      }
      return command.quiet ? undefined : readLine(command.length, command.offset);
    case 'discard':
      if (command.length === 0) checkRange(image, command.offset, 0);
      if (command.length > 0) await image.discard(command.offset, command.length);
      return command.quiet ? undefined : `discard ${command.length}/${command.length} bytes at offset ${command.offset}`;
    case 'truncate':
      await image.resize(command.size);
      return undefined;
    case 'flush':
      await image.flush();
      return undefined;
    default: {
      const never: never = command;
      throw new Error(`unknown io command ${JSON.stringify(never)}`);
    }
  }
}

/**
 * The engine refuses a request past the end itself. The CLI checks first only
 * where the engine would not see the whole request: a request split into
 * pieces (a refused request must change nothing, so no piece may go first)
 * and an empty one, which never reaches the engine (qemu-io accepts `read 0 0`).
 */
function checkRange(image: IoImage, offset: number, length: number): void {
  const split = length > 0 && Math.floor(offset / ioChunkBytes) !== Math.floor((offset + length - 1) / ioChunkBytes);
  if ((split || length === 0) && offset + length > image.virtualSize) {
    throw new Qcow2Error(
      'out-of-range',
      `Input/output error: ${length} bytes at offset ${offset} end past the virtual size ${image.virtualSize}`,
    );
  }
}

/**
 * Index of the first byte of `bytes` that is not `pattern`, or -1. memcmp
 * against a filled buffer first: a 1 GiB verify must not run a JS callback per byte.
 */
function firstMismatch(bytes: Uint8Array, pattern: number): number {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (view.equals(Buffer.alloc(bytes.length, pattern))) return -1;
  return bytes.findIndex((byte) => byte !== pattern);
}

/** [offset, length] pieces of the range, cut at multiples of ioChunkBytes. */
function* pieces(offset: number, length: number): Generator<[number, number]> {
  let at = offset;
  const end = offset + length;
  while (at < end) {
    const next = Math.min(end, (Math.floor(at / ioChunkBytes) + 1) * ioChunkBytes);
    yield [at, next - at];
    at = next;
  }
}
