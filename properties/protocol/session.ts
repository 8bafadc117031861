// One running implementation under test, spoken to through the adapter
// protocol (docs/protocol.md): a child process started from a command line,
// one request at a time on its stdin, one answer line on its stdout, its
// stderr kept as log. Every way it can fail to follow the protocol — it exits
// (crash), it does not answer within the request timeout (hang), it prints a
// line that is no answer (garbage), it answers a request it was not asked
// (out of turn) — ends the session with an AdapterFailure carrying the tail of
// the transcript, and the process is killed: the gate never waits longer than
// one timeout for any request. The timers are injected so that tests drive the
// timeout with a fake clock.
import { spawn, type ChildProcess } from 'node:child_process';
import { AnswerFormatError, encodeRequest, parseAnswer, type Answer, type Request } from './messages.js';

/** A request the implementation has not answered within this many milliseconds is a hang (generous: the machine may be loaded). */
export const requestTimeoutMsDefault = 60_000;

/** Transcript lines kept for a failure report. */
export const transcriptLinesMax = 30;

/** A transcript line is cut to this many characters (base64 data can be megabytes). */
export const transcriptLineCharsMax = 240;

/** An answer line longer than this is garbage: inline data is at most 1 MiB, about 1.4 MB of base64. */
export const answerLineCharsMax = 4 * 1024 * 1024;

export type AdapterFailureKind = 'crash' | 'timeout' | 'garbage' | 'out-of-turn' | 'spawn';

/** The implementation failed the protocol itself; the session is over. */
export class AdapterFailure extends Error {
  override readonly name = 'AdapterFailure';
  constructor(
    readonly kind: AdapterFailureKind,
    readonly detail: string,
    readonly transcriptTail: readonly string[],
  ) {
    super(`the implementation failed (${kind}): ${detail}\ntranscript tail (> to it, < from it, ! its stderr):\n${transcriptTail.map((l) => `  ${l}`).join('\n')}`);
  }
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export interface SessionConstraints {
  /** Default requestTimeoutMsDefault. */
  readonly requestTimeoutMs?: number;
  /** Default the real ones. */
  readonly timers?: Timers;
  /** Working directory of the process. Default this process's. */
  readonly cwd?: string;
}

interface Pending {
  readonly id: number;
  readonly resolve: (answer: Answer) => void;
  readonly reject: (error: AdapterFailure) => void;
  readonly timer: unknown;
}

export class AdapterSession {
  private readonly transcript: string[] = [];
  private nextId = 0;
  private pending: Pending | undefined;
  private failure: AdapterFailure | undefined;
  private stdoutRest = '';
  private stderrRest = '';
  private exited = false;
  private readonly exitWaiters: (() => void)[] = [];
  private readonly timeoutMs: number;
  private readonly timers: Timers;

  private constructor(
    readonly commandLine: string,
    private readonly child: ChildProcess,
    c: SessionConstraints,
  ) {
    this.timeoutMs = c.requestTimeoutMs ?? requestTimeoutMsDefault;
    this.timers = c.timers ?? realTimers;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr?.on('data', (chunk: string) => this.onStderr(chunk));
    // a write to a process that has exited fails with EPIPE; the exit handler reports it
    child.stdin?.on('error', () => undefined);
    child.on('error', (error) => this.fail('spawn', `cannot start ${JSON.stringify(commandLine)}: ${error.message}`));
    // 'close', not 'exit': every line the process printed before it ended has been read by then
    child.on('close', (code, signal) => {
      this.exited = true;
      for (const wake of this.exitWaiters.splice(0)) wake();
      this.fail('crash', `the process exited (${signal === null ? `exit code ${code}` : `signal ${signal}`})`);
    });
  }

  /** Starts `commandLine` with `sh -c` (so quoting works as in a shell), its stdio piped. */
  static start(commandLine: string, c: SessionConstraints = {}): AdapterSession {
    const child = spawn('sh', ['-c', `exec ${commandLine}`], { stdio: ['pipe', 'pipe', 'pipe'], ...(c.cwd === undefined ? {} : { cwd: c.cwd }) });
    return new AdapterSession(commandLine, child, c);
  }

  /** The last transcript lines, oldest first. */
  tail(): readonly string[] {
    return [...this.transcript];
  }

  /**
   * Sends one request and resolves with its answer (a refusal is an answer).
   * Rejects with AdapterFailure when the process breaks the protocol; the
   * session is then over and every later request rejects with the same failure.
   */
  request(request: Request): Promise<Answer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.pending !== undefined) throw new Error(`request ${request.op} while request ${this.pending.id} is outstanding: one at a time`);
    const id = this.nextId++;
    const line = encodeRequest(id, request);
    this.note(`> ${line}`);
    return new Promise<Answer>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => this.fail('timeout', `no answer to request ${id} (${request.op}) within ${this.timeoutMs} ms`), this.timeoutMs);
      this.pending = { id, resolve, reject, timer };
      this.child.stdin?.write(`${line}\n`);
    });
  }

  /**
   * Ends the session: `quit`, then waits up to one timeout for the process to
   * exit, and kills it if it has not. Never rejects.
   */
  async close(): Promise<void> {
    if (this.failure === undefined && !this.exited) await this.request({ op: 'quit' }).catch(() => undefined);
    this.child.stdin?.end();
    if (!this.exited) {
      await new Promise<void>((resolve) => {
        const timer = this.timers.setTimeout(() => {
          this.child.kill('SIGKILL');
          resolve();
        }, this.timeoutMs);
        this.exitWaiters.push(() => {
          this.timers.clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Kills the process at once (after a failure, or when the gate gives up). */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private note(line: string): void {
    this.transcript.push(line.length > transcriptLineCharsMax ? `${line.slice(0, transcriptLineCharsMax)}… (${line.length} chars)` : line);
    if (this.transcript.length > transcriptLinesMax) this.transcript.shift();
  }

  private onStdout(chunk: string): void {
    this.stdoutRest += chunk;
    for (;;) {
      const end = this.stdoutRest.indexOf('\n');
      if (end < 0) break;
      const line = this.stdoutRest.slice(0, end);
      this.stdoutRest = this.stdoutRest.slice(end + 1);
      this.onLine(line);
    }
    if (this.stdoutRest.length > answerLineCharsMax) {
      this.note(`< ${this.stdoutRest}`);
      this.stdoutRest = '';
      this.fail('garbage', `an answer line longer than ${answerLineCharsMax} characters`);
    }
  }

  private onStderr(chunk: string): void {
    const lines = (this.stderrRest + chunk).split('\n');
    this.stderrRest = lines.pop() ?? '';
    for (const line of lines) this.note(`! ${line}`);
  }

  private onLine(line: string): void {
    this.note(`< ${line}`);
    if (this.failure !== undefined) return;
    let answer: Answer;
    try {
      answer = parseAnswer(line);
    } catch (error) {
      if (!(error instanceof AnswerFormatError)) throw error;
      this.fail('garbage', `stdout line is no answer: ${error.message}`);
      return;
    }
    const pending = this.pending;
    if (pending === undefined || answer.id !== pending.id) {
      this.fail('out-of-turn', `an answer with id ${answer.id} while ${pending === undefined ? 'no request was outstanding' : `request ${pending.id} was`}`);
      return;
    }
    this.timers.clearTimeout(pending.timer);
    this.pending = undefined;
    pending.resolve(answer);
  }

  /** Ends the session with a failure (the first one wins) and kills the process. */
  private fail(kind: AdapterFailureKind, detail: string): void {
    if (this.failure !== undefined) return;
    if (this.stderrRest !== '') this.note(`! ${this.stderrRest}`);
    this.stderrRest = '';
    this.failure = new AdapterFailure(kind, detail, this.tail());
    this.kill();
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) {
      this.timers.clearTimeout(pending.timer);
      pending.reject(this.failure);
    }
  }
}
