// Where the gate's batches run: in this thread (one at a time), or in worker
// threads, one batch per worker at a time (gate-worker.ts), so that a 2-core
// machine judges two properties or two batches at once. Either way a batch
// gives the same result; only the wall time differs.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RunResult } from '../../properties/index.js';
import { runBatch, type Batch, type BatchEvent } from './gate-batch.js';
import type { WorkerReply, WorkerRequest } from './gate-worker.js';

/** Progress as the gate counts it: a batch event, or steps counted in a worker since its last report. */
export type PoolEvent = BatchEvent | { readonly kind: 'steps'; readonly steps: number; readonly shrinkSteps: number };

export interface BatchPool {
  /** How many batches may run at once. */
  readonly size: number;
  /**
   * Whether a batch may be left running while the gate goes on: its worker is
   * never reused and `close` terminates it. Not in this thread, where a batch
   * left behind would keep the process alive.
   */
  readonly abandonable: boolean;
  run(batch: Batch, onEvent: (e: PoolEvent) => void): Promise<RunResult>;
  close(): Promise<void>;
}

export class GateWorkerError extends Error {
  override readonly name = 'GateWorkerError';
}

/** Runs batches in this thread, one at a time. */
export function inProcessPool(): BatchPool {
  return {
    size: 1,
    abandonable: false,
    run: (batch, onEvent) =>
      runBatch(batch, (e) => {
        if (e.kind === 'progress' && e.progress.kind === 'step') onEvent({ kind: 'steps', steps: e.progress.shrinking ? 0 : 1, shrinkSteps: e.progress.shrinking ? 1 : 0 });
        else onEvent(e);
      }),
    close: async () => undefined,
  };
}

/**
 * The compiled worker script: next to this file in dist/, or, when this file
 * runs from source (vitest), the copy in dist/ that `npm test` builds first.
 */
export function gateWorkerScriptPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(dirname(here), 'gate-worker.js');
  const root = dirname(dirname(dirname(here)));
  const built = join(root, 'dist', 'cli', 'commands', 'gate-worker.js');
  if (!existsSync(built)) throw new GateWorkerError(`${built} is missing: run \`npm run build\` first (the parallel gate runs the compiled worker)`);
  return built;
}

interface Pending {
  readonly worker: Worker;
  readonly onEvent: (e: PoolEvent) => void;
  readonly resolve: (r: RunResult) => void;
  readonly reject: (e: Error) => void;
}

/** `size` worker threads; `run` may be called up to `size` times at once. */
export function workerPool(size: number): BatchPool {
  const script = gateWorkerScriptPath();
  const idle: Worker[] = [];
  const all: Worker[] = [];
  const pending = new Map<number, Pending>();
  let nextId = 0;
  for (let i = 0; i < size; i++) {
    // A worker tracks the fds it opens with fs so that it can close them when it
    // ends; qemu-io's FIFOs are opened with fs but closed by their net.Socket,
    // so the tracking would warn on every reuse of an fd number ("opened in
    // unmanaged mode twice"). The sockets close them themselves.
    const worker = new Worker(script, { trackUnmanagedFds: false });
    worker.on('message', (reply: WorkerReply) => {
      const p = pending.get(reply.id);
      if (p === undefined) return;
      switch (reply.kind) {
        case 'event':
          return p.onEvent(reply.event);
        case 'steps':
          return p.onEvent({ kind: 'steps', steps: reply.steps, shrinkSteps: reply.shrinkSteps });
        case 'result':
          pending.delete(reply.id);
          idle.push(worker);
          return p.resolve(reply.result);
        case 'crash':
          pending.delete(reply.id);
          idle.push(worker);
          return p.reject(new GateWorkerError(reply.message));
        default: {
          const never: never = reply;
          throw new Error(`unknown worker reply ${JSON.stringify(never)}`);
        }
      }
    });
    worker.on('error', (error) => {
      for (const [id, p] of pending) {
        if (p.worker !== worker) continue;
        pending.delete(id);
        p.reject(new GateWorkerError(`a gate worker died: ${error.message}`));
      }
    });
    all.push(worker);
    idle.push(worker);
  }
  return {
    size,
    abandonable: true,
    run(batch, onEvent) {
      const worker = idle.pop();
      if (worker === undefined) return Promise.reject(new GateWorkerError(`workerPool: more than ${size} batches at once`));
      const id = nextId++;
      return new Promise<RunResult>((resolve, reject) => {
        pending.set(id, { worker, onEvent, resolve, reject });
        worker.postMessage({ id, batch } satisfies WorkerRequest);
      });
    },
    async close() {
      await Promise.all(all.map((w) => w.terminate()));
    },
  };
}
