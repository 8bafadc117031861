// One long-lived qemu-io process per open image, driven command by command.
// Framing is described in framing.ts. Commands run one at a time (a command's
// response is the text up to the next prompt); mutating commands run with -q, so
// success prints nothing and any output is the failure QEMU reported.
import { constants as fsConstants, openSync } from 'node:fs';
import { access, writeFile } from 'node:fs/promises';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { dir, type DirectoryResult } from 'tmp-promise';
import { QemuIoError, QemuOutputError } from '../errors.js';
import { findTool } from '../tool-path.js';
import { runInToolShell, startInToolShell } from '../tool-shell.js';
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
  /**
   * Run qemu-io under `stdbuf -o0`, so that what it prints between prompts
   * arrives at once: blkdebug's "Suspended request" line, printed while a
   * command is held at a break point, would otherwise wait in stdio's buffer
   * for a prompt that never comes.
   */
  readonly unbufferedOutput?: boolean;
}

/** What blkdebug prints when a request reaches a break point (suspend_request in block/blkdebug.c). */
function suspendedLine(tag: string): string {
  return `blkdebug: Suspended request '${tag}'`;
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
  /** The FIFOs and the files of `write -s`; removed when qemu-io has ended. */
  private readonly scratch: Promise<DirectoryResult>;
  /** Output that arrived while no command was running: a protocol break, reported on the next command. */
  private stray: string | undefined;
  /** A break point's tag being watched for, with the output since the watch began (untilSuspended). */
  private watch: { readonly line: string; seen: string; readonly onSuspended: () => void } | undefined;

  private constructor(
    readonly path: string,
    private readonly input: Socket,
    output: Socket,
    status: Promise<number>,
    private readonly pid: Promise<number>,
    scratch: Promise<DirectoryResult>,
  ) {
    this.scratch = scratch;
    this.framer = new PromptFramer((frame) => this.onFrame(frame));
    output.setEncoding('utf8');
    output.on('data', (text: string) => {
      this.onWatched(text);
      this.framer.push(text);
    });
    output.on('error', () => undefined); // reported through the exit status
    input.on('error', () => undefined); // EPIPE after a crash: reported through the exit status
    // Exited: the status is known and all of the output has been read.
    const drained = new Promise<void>((resolve) => output.on('close', () => resolve()));
    this.exited = new Promise((resolve) => {
      const onExit = (how: string): void => {
        if (this.exit !== undefined) return;
        this.exit = how;
        input.destroy();
        const waiting = this.waiting;
        this.waiting = undefined;
        // What it printed last (e.g. "can't open device …", an assertion) plus how it ended.
        waiting?.reject(new QemuIoError(waiting.command, `${this.framer.pending.trim()} [qemu-io ended: ${how}]`.trim()));
        void this.removeScratch().finally(resolve);
      };
      status.then(
        async (code) => {
          await drained;
          onExit(shellStatusText(code));
        },
        (error: unknown) => onExit(`start failed: ${error instanceof Error ? error.message : String(error)}`),
      );
    });
  }

  /**
   * Open `path` in a new qemu-io process; fails with QemuIoError if QEMU cannot open it.
   * qemu-io is started by the tool shell (oracle/tool-shell.ts: no fork of
   * Node) and talked to through two FIFOs in the session's scratch directory,
   * its stderr merged into its stdout by the shell so that messages stay in
   * order with the prompts.
   */
  static async open(path: string, constraints: QemuIoConstraints = {}): Promise<QemuIoSession> {
    const qemuIo = await findTool('qemu-io');
    const unbuffered = constraints.unbufferedOutput === true;
    const binary = unbuffered ? await findCoreutil('stdbuf') : qemuIo;
    const args = [
      ...(unbuffered ? ['-o0', qemuIo] : []),
      '-f',
      constraints.format ?? 'qcow2',
      ...(constraints.readOnly === true ? ['-r'] : []),
      ...(constraints.cache === undefined ? [] : ['-t', constraints.cache]),
      path,
    ];
    const scratch = makeScratchDir();
    const dirPath = (await scratch).path;
    const [stdin, stdout] = [join(dirPath, 'stdin'), join(dirPath, 'stdout')];
    const mkfifo = await runInToolShell(await findCoreutil('mkfifo'), [stdin, stdout]);
    if (mkfifo.status !== 0) throw new Error(`mkfifo ${stdin} ${stdout} failed: ${mkfifo.stderr.trim()}`);
    // Neither open blocks: a FIFO opened read-write has a reader (qemu-io's stdin
    // sees EOF once this side closes), and a non-blocking read end needs no writer.
    const input = new Socket({ fd: openSync(stdin, fsConstants.O_RDWR), readable: false, writable: true });
    const output = new Socket({ fd: openSync(stdout, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK), readable: true, writable: false });
    const run = startInToolShell(binary, args, stdin, stdout);
    const session = new QemuIoSession(path, input, output, run.status, run.pid, scratch);
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

  /** `write -c`: exact bytes as whole clusters stored compressed (qcow2_co_pwritev_compressed); `-P` for a constant fill, else `-s`. */
  writeCompressed(offset: number, bytes: Uint8Array): Promise<void> {
    const first = bytes[0] ?? 0;
    if (bytes.every((byte) => byte === first)) return this.enqueue(() => this.quiet(`write -q -c -P ${hex(first)} ${hex(offset)} ${hex(bytes.length)}`));
    return this.enqueue(async () => {
      const file = join((await this.scratchDir()).path, 'write.bin');
      await writeFile(file, bytes);
      await this.quiet(`write -q -c -s ${file} ${hex(offset)} ${hex(bytes.length)}`);
    });
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

  /**
   * `break EVENT TAG`: the next request that reaches blkdebug's `event` is
   * held there (the image must be opened on blkdebug; QemuIoError when qemu-io
   * cannot set the break point). One-shot: blkdebug removes the rule when it
   * holds a request.
   */
  breakAt(event: string, tag: string): Promise<void> {
    return this.enqueue(() => this.quiet(`break ${event} ${tag}`));
  }

  /**
   * Runs `task` (commands of this session) until it ends or until a request
   * is held at the break point `tag` (breakAt; needs unbufferedOutput). A held
   * request holds its command too, and qemu-io reads no more commands: after
   * 'suspended' the only way on is kill(). The task's own failure is thrown.
   */
  async untilSuspended(tag: string, task: () => Promise<void>): Promise<'suspended' | 'completed'> {
    await this.queue;
    const suspended = new Promise<'suspended'>((resolve) => {
      this.watch = { line: suspendedLine(tag), seen: '', onSuspended: () => resolve('suspended') };
    });
    const run = task().then(() => 'completed' as const);
    // after a suspension the task fails when the process is killed: that failure is expected
    run.catch(() => undefined);
    try {
      return await Promise.race([run, suspended]);
    } finally {
      this.watch = undefined;
    }
  }

  /** SIGKILL of qemu-io from outside (it may be held at a break point and read nothing); resolves when it has ended. */
  async kill(): Promise<void> {
    if (this.exit === undefined) {
      const pid = await this.pid;
      try {
        process.kill(pid, 'SIGKILL');
      } catch (error) {
        // ESRCH: it ended on its own in between
        if (!(error instanceof Error && 'code' in error && error.code === 'ESRCH')) throw error;
      }
    }
    await this.exited;
  }

  /**
   * Quit qemu-io like close(), and return what it printed after its last
   * prompt (`printed`): the errors of the flush it makes while closing the
   * image, e.g. `qemu-io: Failed to flush the L2 table cache: Input/output
   * error` under an injected error; and whether some command of the session
   * failed (`commandFailed`: qemu-io exits with 1 when one did, measured with
   * 7.2), which is the only sign of a failed `flush` command: it prints nothing.
   */
  async closeReporting(): Promise<{ readonly printed: string; readonly commandFailed: boolean }> {
    await this.close();
    return { printed: this.framer.pending.trim(), commandFailed: this.exit !== 'exit code 0' };
  }

  /** Quit qemu-io and remove scratch files. Safe to call twice or after a crash. */
  async close(): Promise<void> {
    await this.queue; // let commands already asked for finish first
    if (this.exit === undefined && this.input.writable) this.input.end('quit\n');
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
    this.input.write(`${command}\n`);
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

  private onWatched(text: string): void {
    const watch = this.watch;
    if (watch === undefined) return;
    // keep only what a line split across chunks needs
    watch.seen = (watch.seen + text).slice(-(watch.line.length + text.length));
    if (watch.seen.includes(watch.line)) watch.onSuspended();
  }

  private onFrame(frame: string): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting === undefined) this.stray = (this.stray ?? '') + frame;
    else waiting.resolve(frame);
  }

  private scratchDir(): Promise<DirectoryResult> {
    return this.scratch;
  }

  private async removeScratch(): Promise<void> {
    await (await this.scratch).cleanup();
  }
}

function makeScratchDir(): Promise<DirectoryResult> {
  // qemu-io splits command lines at spaces and has no quoting, so the -s path must have none.
  return dir({ unsafeCleanup: true, prefix: 'qcow2-verify-io-' }).then((made) => {
    if (/\s/.test(made.path)) throw new Error(`scratch path has whitespace: ${made.path}`);
    return made;
  });
}

/** How the shell's `$?` ended a program: an exit code, or 128 + a signal number. */
function shellStatusText(status: number): string {
  if (status <= 128) return `exit code ${status}`;
  const name = Object.entries(constants.signals).find(([, number]) => number === status - 128)?.[0];
  return `signal ${name ?? status - 128}`;
}

async function findCoreutil(name: 'mkfifo' | 'stdbuf'): Promise<string> {
  for (const candidate of [`/usr/bin/${name}`, `/bin/${name}`]) {
    try {
      await access(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; try the next
    }
  }
  throw new Error(`${name} not found in /usr/bin or /bin`);
}

/** Open an interactive qemu-io session on `path`. */
export function openQemuIo(path: string, constraints: QemuIoConstraints = {}): Promise<QemuIoSession> {
  return QemuIoSession.open(path, constraints);
}
