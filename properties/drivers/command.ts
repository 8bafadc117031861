// Any implementation under test, as a program that speaks the adapter protocol
// (docs/protocol.md; `--impl cmd:<command line>`). One process per sequence:
// it is started, shakes hands, and is asked to create (a read-write
// implementation) or to open and read (a reader) an image in a temporary
// directory that the gate reads too. Refusals map onto the model's error
// kinds; anything else, and any breach of the protocol, is an
// ImplementationError whose message carries the transcript's tail.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { formatOp, type CreateOverlayOp, type ImageOptions, type Op, type Outcome, type RebaseOp } from '../../model/index.js';
import { ImplementationError, isOpErrorKind, okOutcome, refused, type DriverFactory, type ImageDriver } from '../driver.js';
import { parseCapabilities, type Capabilities } from '../protocol/capabilities.js';
import { decodeData, inlineDataBytesMax, protocolVersion, rebaseRequest, requestForOp, type Request } from '../protocol/messages.js';
import { AdapterFailure, AdapterSession, type SessionConstraints } from '../protocol/session.js';
import { backingAt, chainAfter, copyBackingFiles, moveToBacking, noChain, overlayBackingFile, readBackingFiles, type ChainFile, type ChainFiles } from './chain-files.js';
import { headerVirtualSize } from './image-file.js';

export interface CommandConstraints extends SessionConstraints {
  /** The command line, without the `cmd:` prefix. */
  readonly commandLine: string;
}

/** A started session with its handshake done; AdapterFailure or ImplementationError when it cannot shake hands. */
async function startSession(c: CommandConstraints): Promise<{ session: AdapterSession; caps: Capabilities }> {
  const session = AdapterSession.start(c.commandLine, c);
  try {
    const answer = await session.request({ op: 'hello', protocol: protocolVersion });
    if (!answer.ok) throw new Error(`the handshake was refused: ${answer.error}: ${answer.message}`);
    return { session, caps: parseCapabilities(answer.body) };
  } catch (error) {
    session.kill();
    const message = error instanceof AdapterFailure ? error.message : `${error instanceof Error ? error.message : String(error)}\ntranscript tail:\n${session.tail().join('\n')}`;
    throw new ImplementationError(`cmd:${c.commandLine}`, 'hello', message, false, { cause: error });
  }
}

/** Whether `error` is a request of a cmd: implementation that timed out (a hang: not worth shrinking). */
export function isAdapterHang(error: unknown): boolean {
  return error instanceof ImplementationError && error.cause instanceof AdapterFailure && error.cause.kind === 'timeout';
}

/** The handshake alone: starts the program, reads its capabilities, ends it. */
export async function probeCapabilities(c: CommandConstraints): Promise<Capabilities> {
  const { session, caps } = await startSession(c);
  await session.close();
  return caps;
}

/** The session and its temporary directory, shared by the writer and the reader drivers. */
class Adapter {
  private spills = 0;

  constructor(
    readonly name: string,
    readonly session: AdapterSession,
    readonly tmp: DirectoryResult,
  ) {}

  get imagePath(): string {
    return join(this.tmp.path, 'image.qcow2');
  }

  /** A fresh file in the session's directory (data too large to travel inline). */
  private spillPath(): string {
    return join(this.tmp.path, 'data', `${this.spills++}`);
  }

  async spill(bytes: Uint8Array): Promise<string> {
    const path = this.spillPath();
    await mkdir(join(this.tmp.path, 'data'), { recursive: true });
    await writeFile(path, bytes);
    return path;
  }

  /** Sends a request that must succeed; any refusal or breach is an ImplementationError for `operation`. */
  async must(request: Request, operation: string): Promise<Readonly<Record<string, unknown>>> {
    const answer = await this.send(request, operation);
    if (!answer.ok) throw new ImplementationError(this.name, operation, `${answer.error}: ${answer.message}`, answer.error === 'assertion');
    return answer.body;
  }

  async send(request: Request, operation: string) {
    try {
      return await this.session.request(request);
    } catch (error) {
      if (error instanceof AdapterFailure) throw new ImplementationError(this.name, operation, error.message, false, { cause: error });
      throw error;
    }
  }

  async apply(op: Op): Promise<Outcome> {
    return this.outcome(await requestForOp(op, (bytes) => this.spill(bytes)), formatOp(op));
  }

  /** Sends an operation's request: ok, a refusal of the model's kinds, or an ImplementationError. */
  async outcome(request: Request, operation: string): Promise<Outcome> {
    const answer = await this.send(request, operation);
    if (answer.ok) return okOutcome;
    if (isOpErrorKind(answer.error)) return refused(answer.error, answer.message);
    throw new ImplementationError(this.name, operation, `${answer.error}: ${answer.message}`, answer.error === 'assertion');
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const operation = `read 0x${offset.toString(16)} 0x${length.toString(16)}`;
    const toFile = length > inlineDataBytesMax ? this.spillPath() : undefined;
    if (toFile !== undefined) await mkdir(join(this.tmp.path, 'data'), { recursive: true });
    const body = await this.must({ op: 'read', offset, length, ...(toFile === undefined ? {} : { toFile }) }, operation);
    try {
      if (toFile === undefined) return decodeData(body.data, length);
      const bytes = new Uint8Array(await readFile(toFile));
      await rm(toFile, { force: true });
      if (bytes.length !== length) throw new Error(`${toFile} holds ${bytes.length} bytes, the read asked for ${length}`);
      return bytes;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new ImplementationError(this.name, operation, `the answer's data is wrong: ${message}\ntranscript tail:\n${this.session.tail().join('\n')}`, false, { cause: error });
    }
  }

  async close(closeImage: boolean): Promise<void> {
    try {
      if (closeImage) await this.must({ op: 'close' }, 'close');
    } finally {
      await this.session.close();
      await this.tmp.cleanup();
    }
  }
}

/**
 * A read-write implementation: it creates the image and applies every op. A
 * backing chain is laid out as chain-files.ts does, next to the image: for
 * createOverlay the gate has the image closed, moves it under its backing
 * name itself (a raw one read through the implementation first) and sends
 * `create` with that backing file; rebase names a file of that chain.
 */
class CommandDriver implements ImageDriver {
  private closed = false;
  private chain: ChainFiles = noChain;

  constructor(
    private readonly adapter: Adapter,
    private lazyRefcounts: boolean,
  ) {}

  get name(): string {
    return this.adapter.name;
  }

  apply(op: Op): Promise<Outcome> {
    if (op.kind === 'createOverlay') return this.createOverlay(op);
    if (op.kind === 'rebase') return this.rebase(op);
    return this.adapter.apply(op);
  }

  private async createOverlay(op: CreateOverlayOp): Promise<Outcome> {
    const path = this.adapter.imagePath;
    const file = overlayBackingFile(this.chain, op);
    await this.adapter.must({ op: 'close' }, 'close (createOverlay)');
    const size = await headerVirtualSize(path);
    await moveToBacking(path, file, async (target) => {
      await this.adapter.must({ op: 'open', path, readOnly: true }, 'open (createOverlay: the raw backing file)');
      await writeFile(target, await this.adapter.read(0, size));
      await this.adapter.must({ op: 'close' }, 'close (createOverlay)');
    });
    const outcome = await this.adapter.outcome({ op: 'create', path, options: op.options, backingFile: file.name, backingFormat: file.format }, formatOp(op));
    if (outcome.ok) {
      this.chain = chainAfter(this.chain, op);
      this.lazyRefcounts = op.options.lazyRefcounts;
    }
    return outcome;
  }

  private async rebase(op: RebaseOp): Promise<Outcome> {
    const outcome = await this.adapter.outcome(rebaseRequest(backingAt(this.chain, op.depth), op.unsafe), formatOp(op));
    if (outcome.ok) this.chain = chainAfter(this.chain, op);
    return outcome;
  }

  /** The backing files next to the image, nearest first. */
  backingChain(): readonly ChainFile[] {
    return this.chain.backings;
  }

  backingFileBytes(): Promise<readonly Uint8Array[]> {
    return readBackingFiles(this.adapter.imagePath, this.chain);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.adapter.read(offset, length);
  }

  /**
   * The file after a flush; with lazy refcounts after a reopen, since an
   * implementation may leave refcounts stale until it closes the image (as
   * QEMU does). Neither changes what the model expects.
   */
  async imageBytes(): Promise<Uint8Array> {
    await this.adapter.must({ op: this.lazyRefcounts ? 'reopen' : 'flush' }, 'flush');
    try {
      return new Uint8Array(await readFile(this.adapter.imagePath));
    } catch (error) {
      throw new ImplementationError(this.name, 'flush', `no image file where it was created: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
    }
  }

  async fileLength(): Promise<number> {
    return (await stat(this.adapter.imagePath)).size;
  }

  /** The image, and its backing files next to it under their names, so that the copy is a working chain. */
  async writeTo(path: string): Promise<void> {
    await writeFile(path, await this.imageBytes());
    await copyBackingFiles(this.adapter.imagePath, path, this.chain);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.adapter.close(true);
  }
}

/**
 * A reader: another implementation (`producer`) builds the image; before a
 * read after any change the reader closes the image, the producer writes it
 * out, and the reader opens it read-only again. Everything but reads is the
 * producer's.
 */
class ReaderDriver implements ImageDriver {
  private open = false;
  private stale = true;
  private closed = false;

  constructor(
    private readonly adapter: Adapter,
    private readonly producer: ImageDriver,
  ) {}

  get name(): string {
    return `${this.adapter.name} reading images of ${this.producer.name}`;
  }

  async apply(op: Op): Promise<Outcome> {
    this.stale = true;
    return this.producer.apply(op);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.stale) {
      if (this.open) await this.adapter.must({ op: 'close' }, 'close');
      this.open = false;
      await this.producer.writeTo(this.adapter.imagePath);
      await this.adapter.must({ op: 'open', path: this.adapter.imagePath, readOnly: true }, 'open');
      this.open = true;
      this.stale = false;
    }
    return this.adapter.read(offset, length);
  }

  imageBytes(): Promise<Uint8Array> {
    return this.producer.imageBytes();
  }

  fileLength(): Promise<number> {
    return this.producer.fileLength();
  }

  writeTo(path: string): Promise<void> {
    return this.producer.writeTo(path);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.adapter.close(this.open);
    } finally {
      await this.producer.close();
    }
  }
}

async function startAdapter(c: CommandConstraints): Promise<{ adapter: Adapter; caps: Capabilities }> {
  const { session, caps } = await startSession(c);
  const tmp = await dir({ unsafeCleanup: true, prefix: 'qcow2-verify-cmd-' });
  return { adapter: new Adapter(`${caps.name} ${caps.version} (cmd:${c.commandLine})`, session, tmp), caps };
}

/** Drivers for a read-write implementation: each call starts the program and has it create a fresh image. */
export function commandDriverFactory(c: CommandConstraints): DriverFactory {
  return async (options: ImageOptions) => {
    const { adapter, caps } = await startAdapter(c);
    if (caps.mode !== 'read-write') {
      await adapter.close(false);
      throw new ImplementationError(adapter.name, 'create', 'the implementation is read-only; only reader properties apply to it', false);
    }
    const driver = new CommandDriver(adapter, options.lazyRefcounts);
    try {
      await adapter.must({ op: 'create', path: adapter.imagePath, options }, 'create');
      return driver;
    } catch (error) {
      await adapter.close(false);
      throw error;
    }
  };
}

/** Drivers for reading: `producer` builds each image, the program reads it. */
export function readerDriverFactory(c: CommandConstraints, producer: DriverFactory): DriverFactory {
  return async (options: ImageOptions) => {
    const built = await producer(options);
    try {
      const { adapter } = await startAdapter(c);
      return new ReaderDriver(adapter, built);
    } catch (error) {
      await built.close();
      throw error;
    }
  };
}
