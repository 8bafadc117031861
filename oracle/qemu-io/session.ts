// One long-lived qemu-io process per open image, driven command by command.
// Framing is described in framing.ts. Commands run one at a time (a command's
// response is the text up to the next prompt); mutating commands run with -q, so
// success prints nothing and any output is the failure QEMU reported.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { QemuIoError, QemuOutputError } from '../errors.js';
import { findTool } from '../run.js';
import { parseHexdump, PromptFramer } from './framing.js';

/** qemu-io `-t`: how QEMU caches the image file. */
export type QemuIoCacheMode = 'writethrough' | 'writeback' | 'unsafe' | 'none' | 'directsync';

export interface QemuIoConstraints {
  /** Defaults to qcow2: a damaged image is never format-probed. */
  readonly format?: string;
  readonly readOnly?: boolean;
  /**
   * Default: qemu-io's own, writethrough (a flush after every write: about two
   * fdatasync calls each). `unsafe` is writeback without fdatasync: `flush`
   * still writes QEMU's metadata caches to the file, so other processes see it.
   */
  readonly cache?: QemuIoCacheMode;
}

export interface WriteZeroesConstraints {
  /** `-u`: allow QEMU to deallocate (qcow2: zero-plain instead of zero-alloc). */
  readonly unmap: boolean;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export class QemuIoSession {
  private readonly framer: PromptFramer;
  private waiting: { resolve: (frame: string) => void; reject: (error: Error) => void; command: string } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private exit: string | undefined;
  private readonly exited: Promise<void>;
  private scratch: Promise<DirectoryResult> | undefined;
  /** Output that arrived while no command was running: a protocol break, reported on the next command. */
  private stray: string | undefined;

  private constructor(
    readonly path: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    this.framer = new PromptFramer((frame) => this.onFrame(frame));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => this.framer.push(text));
    child.stdin.on('error', () => undefined); // EPIPE after a crash: reported through 'exit'
    this.exited = new Promise((resolve) => {
      const onExit = (how: string): void => {
        if (this.exit !== undefined) return;
        this.exit = how;
        const waiting = this.waiting;
        this.waiting = undefined;
        // What it printed last (e.g. "can't open device …", an assertion) plus how it ended.
        waiting?.reject(new QemuIoError(waiting.command, `${this.framer.pending.trim()} [qemu-io ended: ${how}]`.trim()));
        void this.removeScratch().finally(resolve);
      };
      child.on('close', (code, signal) => onExit(signal === null ? `exit code ${code}` : `signal ${signal}`));
      child.on('error', (error) => onExit(`spawn failed: ${error.message}`));
    });
  }

  /** Open `path` in a new qemu-io process; fails with QemuIoError if QEMU cannot open it. */
  static async open(path: string, constraints: QemuIoConstraints = {}): Promise<QemuIoSession> {
    const binary = await findTool('qemu-io');
    const args = [
      '-f',
      constraints.format ?? 'qcow2',
      ...(constraints.readOnly === true ? ['-r'] : []),
      ...(constraints.cache === undefined ? [] : ['-t', constraints.cache]),
      path,
    ];
    // sh merges stderr into the same pipe, so messages stay in order with the prompts.
    const child = spawn('sh', ['-c', 'exec "$0" "$@" 2>&1', binary, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const session = new QemuIoSession(path, child);
    const greeting = await session.awaitFrame(`open ${path}`);
    if (greeting.trim() !== '') {
      await session.close();
      throw new QemuIoError(`open ${path}`, greeting.trim());
    }
    return session;
  }

  /** Write exact bytes: a constant fill uses `write -P`, anything else `write -s` from a scratch file. */
  write(offset: number, bytes: Uint8Array): Promise<void> {
    const first = bytes[0] ?? 0;
    if (bytes.every((byte) => byte === first)) return this.writePattern(offset, bytes.length, first);
    return this.enqueue(async () => {
      const file = join((await this.scratchDir()).path, 'write.bin');
      await writeFile(file, bytes);
      await this.quiet(`write -q -s ${file} ${hex(offset)} ${hex(bytes.length)}`);
    });
  }

  writePattern(offset: number, length: number, pattern: number): Promise<void> {
    return this.enqueue(() => this.quiet(`write -q -P ${hex(pattern & 0xff)} ${hex(offset)} ${hex(length)}`));
  }

  writeZeroes(offset: number, length: number, constraints: WriteZeroesConstraints): Promise<void> {
    const flags = constraints.unmap ? '-q -z -u' : '-q -z';
    return this.enqueue(() => this.quiet(`write ${flags} ${hex(offset)} ${hex(length)}`));
  }

  discard(offset: number, length: number): Promise<void> {
    return this.enqueue(() => this.quiet(`discard -q ${hex(offset)} ${hex(length)}`));
  }

  flush(): Promise<void> {
    return this.enqueue(() => this.quiet('flush'));
  }

  /** Resize the virtual disk (shrinking allowed; QEMU wants a multiple of 512). */
  truncate(size: number): Promise<void> {
    return this.enqueue(() => this.quiet(`truncate ${hex(size)}`));
  }

  /** The exact guest bytes, from `read -v` (a hexdump: about 4 output bytes per byte read). */
  read(offset: number, length: number): Promise<Uint8Array> {
    const command = `read -v ${hex(offset)} ${hex(length)}`;
    return this.enqueue(async () => {
      const frame = await this.command(command);
      const failure = /^read failed: .*$/m.exec(frame);
      if (failure !== null) throw new QemuIoError(command, failure[0]);
      return parseHexdump(frame, offset, length, command);
    });
  }

  /** Any qemu-io command line; returns its raw response. Failures are not interpreted. */
  run(command: string): Promise<string> {
    return this.enqueue(() => this.command(command));
  }

  /** Quit qemu-io and remove scratch files. Safe to call twice or after a crash. */
  async close(): Promise<void> {
    await this.queue; // let commands already asked for finish first
    if (this.exit === undefined && this.child.stdin.writable) this.child.stdin.end('quit\n');
    await this.exited;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async quiet(command: string): Promise<void> {
    const frame = await this.command(command);
    if (frame.trim() !== '') throw new QemuIoError(command, frame.trim());
  }

  private command(command: string): Promise<string> {
    if (/[\n\r]/.test(command)) throw new Error(`qemu-io command must be one line: ${JSON.stringify(command)}`);
    const frame = this.awaitFrame(command);
    this.child.stdin.write(`${command}\n`);
    return frame;
  }

  private awaitFrame(command: string): Promise<string> {
    if (this.exit !== undefined) return Promise.reject(new QemuIoError(command, `qemu-io is not running (${this.exit})`));
    if (this.waiting !== undefined) throw new Error(`qemu-io: "${command}" sent while "${this.waiting.command}" runs`);
    if (this.stray !== undefined) {
      return Promise.reject(new QemuOutputError('qemu-io', command, 'unrequested output before the command', this.stray));
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, command };
    });
  }

  private onFrame(frame: string): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting === undefined) this.stray = (this.stray ?? '') + frame;
    else waiting.resolve(frame);
  }

  private scratchDir(): Promise<DirectoryResult> {
    // qemu-io splits command lines at spaces and has no quoting, so the -s path must have none.
    this.scratch ??= dir({ unsafeCleanup: true, prefix: 'qcow2-verify-io-' }).then((made) => {
      if (/\s/.test(made.path)) throw new Error(`scratch path has whitespace: ${made.path}`);
      return made;
    });
    return this.scratch;
  }

  private async removeScratch(): Promise<void> {
    if (this.scratch !== undefined) await (await this.scratch).cleanup();
  }
}

/** Open an interactive qemu-io session on `path`. */
export function openQemuIo(path: string, constraints: QemuIoConstraints = {}): Promise<QemuIoSession> {
  return QemuIoSession.open(path, constraints);
}
