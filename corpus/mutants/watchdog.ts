// The watchdog around our verdict: each mutant is evaluated in a worker thread
// with a V8 heap limit (resourceLimits, the in-thread --max-old-space-size) and
// a timeout, so a hang or a memory blow-up in the engine or the checker becomes
// a finding instead of a stuck campaign. One worker is reused across mutants
// and replaced after it is killed. The timeout is generous on purpose: a
// verdict never depends on timing unless something truly runs away.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { OurVerdict } from './our-verdict.js';
import type { WorkerMessage, WorkerRequest } from './verdict-worker.js';

export interface WatchdogConstraints {
  /** Per mutant; default 20 s (a mutant normally takes milliseconds). */
  readonly timeoutMs?: number;
  /** V8 old-generation limit of the worker; default 512 MiB. */
  readonly heapMb?: number;
  /** ArrayBuffer bytes the worker may hold after a phase; default 512 MiB. */
  readonly arrayBufferBytesMax?: number;
}

export type WatchdogResult =
  | { readonly kind: 'verdict'; readonly verdict: OurVerdict }
  | { readonly kind: 'hang'; readonly phase: string; readonly timeoutMs: number }
  | { readonly kind: 'memory'; readonly phase: string; readonly detail: string }
  | { readonly kind: 'crash'; readonly phase: string; readonly detail: string };

export class WatchdogSetupError extends Error {
  override readonly name = 'WatchdogSetupError';
}

/**
 * The compiled worker script. From dist/ it sits next to this file; when this
 * file runs from source (vitest), the compiled copy in dist/ is used, which
 * `npm test` builds first (pretest).
 */
export function workerScriptPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(dirname(here), 'verdict-worker.js');
  const root = dirname(dirname(dirname(here)));
  const built = join(root, 'dist', 'corpus', 'mutants', 'verdict-worker.js');
  if (!existsSync(built)) throw new WatchdogSetupError(`${built} is missing: run \`npm run build\` first (the watchdog runs the compiled worker)`);
  return built;
}

interface Pending {
  readonly id: number;
  phase: string;
  readonly resolve: (result: WatchdogResult) => void;
  readonly timer: NodeJS.Timeout;
}

export class VerdictWatchdog {
  private worker: Worker | undefined;
  private pending: Pending | undefined;
  private nextId = 0;
  private readonly timeoutMs: number;
  private readonly heapMb: number;
  private readonly arrayBufferBytesMax: number;

  constructor(constraints: WatchdogConstraints = {}) {
    this.timeoutMs = constraints.timeoutMs ?? 20_000;
    this.heapMb = constraints.heapMb ?? 512;
    this.arrayBufferBytesMax = constraints.arrayBufferBytesMax ?? 512 * 1024 * 1024;
  }

  evaluate(bytes: Uint8Array): Promise<WatchdogResult> {
    return this.send((id) => ({ kind: 'evaluate', id, bytes }));
  }

  /** Test hooks: a request that never finishes, and one that exhausts the heap. */
  selfTest(kind: 'spin' | 'allocate'): Promise<WatchdogResult> {
    return this.send((id) => ({ kind, id }));
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  private send(request: (id: number) => WorkerRequest): Promise<WatchdogResult> {
    if (this.pending !== undefined) throw new Error('VerdictWatchdog evaluates one mutant at a time');
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise<WatchdogResult>((resolve) => {
      const timer = setTimeout(() => this.kill({ kind: 'hang', phase: this.pending?.phase ?? 'start', timeoutMs: this.timeoutMs }), this.timeoutMs);
      this.pending = { id, phase: 'start', resolve, timer };
      worker.postMessage(request(id));
    });
  }

  private ensureWorker(): Worker {
    if (this.worker !== undefined) return this.worker;
    const worker = new Worker(workerScriptPath(), {
      resourceLimits: { maxOldGenerationSizeMb: this.heapMb, maxYoungGenerationSizeMb: 64 },
      stdout: true, // engine debug output must not garble the progress line
      stderr: true,
    });
    worker.unref();
    worker.stdout.resume();
    worker.stderr.resume();
    // Events of a worker that was already replaced must not touch the next request.
    worker.on('message', (message: WorkerMessage) => {
      if (this.worker === worker) this.onMessage(message);
    });
    worker.on('error', (error: Error & { code?: string }) => {
      if (this.worker !== worker) return;
      const phase = this.pending?.phase ?? 'idle';
      if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') this.kill({ kind: 'memory', phase, detail: `V8 heap limit ${this.heapMb} MiB exceeded` });
      else this.kill({ kind: 'crash', phase, detail: `${error.name}: ${error.message}` });
    });
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      if (this.pending !== undefined) this.kill({ kind: 'crash', phase: this.pending.phase, detail: `worker exited with code ${code}` });
    });
    this.worker = worker;
    return worker;
  }

  private onMessage(message: WorkerMessage): void {
    const pending = this.pending;
    if (pending === undefined || message.id !== pending.id) return;
    if (message.arrayBuffers > this.arrayBufferBytesMax) {
      this.kill({ kind: 'memory', phase: message.kind === 'phase' ? message.phase : pending.phase, detail: `${message.arrayBuffers} ArrayBuffer bytes held (limit ${this.arrayBufferBytesMax})` });
      return;
    }
    if (message.kind === 'phase') {
      pending.phase = message.phase;
      return;
    }
    this.finish({ kind: 'verdict', verdict: message.verdict });
  }

  private finish(result: WatchdogResult): void {
    const pending = this.pending;
    if (pending === undefined) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    pending.resolve(result);
  }

  /** Ends the pending request with `result` and replaces the worker. */
  private kill(result: WatchdogResult): void {
    const worker = this.worker;
    this.worker = undefined;
    this.finish(result);
    if (worker !== undefined) void worker.terminate();
  }
}
