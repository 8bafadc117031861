// One long-lived `sh` that starts the QEMU tools for this process.
//
// Why: on Linux, Node spawns a child by forking its own process, and the main
// thread waits until the child has called exec. The cost grows with Node's
// memory and with the machine's load: measured here (2 cores, load 15), a
// spawn took 20 ms from an empty Node and 87 ms from one holding 300 MiB, and
// the engine gate spent a fifth of its time inside spawn. A shell is a few
// hundred KiB: its forks are cheap and happen outside Node's thread, which
// only writes one line per run.
//
// Protocol: each run is one line on the shell's stdin (a long-lived program
// reads and writes FIFOs instead of files),
//   { 'binary' 'arg' … </dev/null >DIR/N.out 2>DIR/N.err; echo "N $?"; } &
// so runs are concurrent, and each ends with the line "N status" on the
// shell's stdout (short writes to a pipe are atomic). A connected run (a
// long-lived program) first says its process id, "pid N P", so that it can be
// killed while it reads nothing (a qemu-io held at a blkdebug break point). The output files are
// read and removed then. dash reaps its finished background jobs itself:
// 5000 runs leave it at 2 MiB and no zombies.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface ShellRun {
  /** The shell's `$?`: the exit code, or 128 + the signal that killed the tool. */
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Pending {
  /** Called with the exit status; the output is then in the run's files. */
  readonly resolve: (status: number) => void;
  readonly reject: (error: Error) => void;
  /** A connected run's process id, when it is known. */
  readonly onPid?: (pid: number) => void;
}

const doneLine = /^(\d+) (\d+)$/;
const pidLine = /^pid (\d+) (\d+)$/;

/** A long-lived program started by the tool shell. */
export interface ConnectedRun {
  /** Its shell status when it exits (128 + the signal that killed it). */
  readonly status: Promise<number>;
  /** Its process id (the program's own: the shell starts it in the background). */
  readonly pid: Promise<number>;
}

/** `arg` as one single-quoted shell word. */
export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A child's pipes are net.Sockets, whose handles can be unref'd; the typings only say Readable/Writable. */
function socket(stream: Readable | Writable): Socket {
  return stream as Socket;
}

class ToolShell {
  private readonly pending = new Map<number, Pending>();
  private next = 0;
  private partial = '';
  private ended: string | undefined;

  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly dir: string,
  ) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => this.onOutput(text));
    child.stdin.on('error', () => undefined); // EPIPE after the shell died: reported through 'close'
    child.on('close', (code, signal) => this.onEnd(`the tool shell ended (${signal ?? `exit code ${code}`})`));
    child.on('error', (error) => this.onEnd(`the tool shell failed: ${error.message}`));
    this.idle();
  }

  static start(): ToolShell {
    const dir = mkdtempSync(join(tmpdir(), 'qcow2-verify-tools-'));
    // The inner shell reads the runs; when this process ends, however it ends
    // (a vitest worker never sees 'exit'), its stdin closes and the outer shell
    // removes the directory. The shells' own stderr is not read: a run's
    // failures go to its own files.
    const child = spawn('sh', ['-c', 'sh -s; rm -rf "$0"', dir], { stdio: ['pipe', 'pipe', 'ignore'] });
    return new ToolShell(child, dir);
  }

  get alive(): boolean {
    return this.ended === undefined;
  }

  /** Runs `binary args` (an absolute path) with stdin closed; resolves when it exits. */
  async run(binary: string, args: readonly string[]): Promise<ShellRun> {
    const id = this.next++;
    const out = join(this.dir, `${id}.out`);
    const err = join(this.dir, `${id}.err`);
    const status = await this.start(id, binary, args, `</dev/null >${shellQuote(out)} 2>${shellQuote(err)}`);
    const [stdout, stderr] = await Promise.all([readFile(out, 'utf8'), readFile(err, 'utf8')]);
    await Promise.all([rm(out, { force: true }), rm(err, { force: true })]);
    return { status, stdout, stderr };
  }

  /** Runs `binary args` reading `stdin` and writing stdout and stderr, merged, to `output` (e.g. FIFOs); resolves with its status. */
  runConnected(binary: string, args: readonly string[], stdin: string, output: string): ConnectedRun {
    let onPid: (pid: number) => void = () => undefined;
    let noPid: (error: Error) => void = () => undefined;
    const pid = new Promise<number>((resolve, reject) => {
      onPid = resolve;
      noPid = reject;
    });
    const status = this.start(this.next++, binary, args, `<${shellQuote(stdin)} >${shellQuote(output)} 2>&1`, onPid);
    // a run that ends before its pid line was read (the shell died) has no pid either
    status.catch((error: unknown) => noPid(error instanceof Error ? error : new Error(String(error))));
    pid.catch(() => undefined);
    return { status, pid };
  }

  private start(id: number, binary: string, args: readonly string[], redirections: string, onPid?: (pid: number) => void): Promise<number> {
    if (this.ended !== undefined) return Promise.reject(new Error(this.ended));
    const words = [binary, ...args].map(shellQuote).join(' ');
    const done = new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...(onPid === undefined ? {} : { onPid }) });
    });
    this.busy();
    const run =
      onPid === undefined
        ? `{ ${words} ${redirections}; echo "${id} $?"; } &\n`
        : `{ ${words} ${redirections} & p=$!; echo "pid ${id} $p"; wait "$p"; echo "${id} $?"; } &\n`;
    this.child.stdin.write(run);
    return done;
  }

  private onOutput(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const pid = pidLine.exec(line);
      if (pid !== null) {
        this.pending.get(Number(pid[1]))?.onPid?.(Number(pid[2]));
        continue;
      }
      const match = doneLine.exec(line);
      const entry = match === null ? undefined : this.pending.get(Number(match[1]));
      if (match === null || entry === undefined) {
        this.onEnd(`the tool shell printed an unexpected line: ${JSON.stringify(line)}`);
        this.child.kill();
        return;
      }
      this.pending.delete(Number(match[1]));
      entry.resolve(Number(match[2]));
    }
    if (this.pending.size === 0) this.idle();
  }

  private onEnd(why: string): void {
    this.ended ??= why;
    for (const entry of this.pending.values()) entry.reject(new Error(this.ended));
    this.pending.clear();
  }

  /** While no run is pending, the shell does not keep Node alive (it exits when Node closes its stdin). */
  private idle(): void {
    this.child.unref();
    socket(this.child.stdin).unref();
    socket(this.child.stdout).unref();
  }

  private busy(): void {
    this.child.ref();
    socket(this.child.stdout).ref();
  }
}

let shell: ToolShell | undefined;

function toolShell(): ToolShell {
  if (shell === undefined || !shell.alive) shell = ToolShell.start();
  return shell;
}

/** Runs `binary args` through this process's tool shell, started on first use (and again if it died). */
export function runInToolShell(binary: string, args: readonly string[]): Promise<ShellRun> {
  return toolShell().run(binary, args);
}

/**
 * Starts `binary args` through the tool shell with stdin from `stdin` and
 * stdout and stderr, in order, to `output`; its status resolves when it
 * exits, its pid as soon as the shell has started it. For long-lived programs
 * talked to through FIFOs.
 */
export function startInToolShell(binary: string, args: readonly string[], stdin: string, output: string): ConnectedRun {
  return toolShell().runConnected(binary, args, stdin, output);
}
