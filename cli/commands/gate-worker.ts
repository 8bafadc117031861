// Worker-thread entry of the parallel gate (gate-pool.ts): runs the batches it
// is sent, one at a time, and posts their progress and results back. Steps are
// counted here and posted with the next other event or every
// `stepsPostIntervalMs`, so a fast engine does not flood the channel.
import { parentPort } from 'node:worker_threads';
import { epochNow, portableResult, runBatch, type Batch, type BatchEvent } from './gate-batch.js';
import type { RunResult } from '../../properties/index.js';

export type WorkerRequest = { readonly id: number; readonly batch: Batch };

export type WorkerReply =
  | { readonly kind: 'event'; readonly id: number; readonly event: BatchEvent }
  | { readonly kind: 'steps'; readonly id: number; readonly steps: number; readonly shrinkSteps: number }
  | { readonly kind: 'result'; readonly id: number; readonly result: RunResult }
  | { readonly kind: 'crash'; readonly id: number; readonly message: string };

export const stepsPostIntervalMs = 250;

const port = parentPort;
if (port === null) throw new Error('gate-worker.js must run as a worker thread');

port.on('message', (request: WorkerRequest) => {
  const { id, batch } = request;
  let steps = 0;
  let shrinkSteps = 0;
  let postedAt = epochNow();
  const flushSteps = () => {
    if (steps + shrinkSteps > 0) port.postMessage({ kind: 'steps', id, steps, shrinkSteps } satisfies WorkerReply);
    steps = 0;
    shrinkSteps = 0;
    postedAt = epochNow();
  };
  const onEvent = (event: BatchEvent) => {
    if (event.kind === 'progress' && event.progress.kind === 'step') {
      if (event.progress.shrinking) shrinkSteps++;
      else steps++;
      if (epochNow() - postedAt >= stepsPostIntervalMs) flushSteps();
      return;
    }
    flushSteps();
    port.postMessage({ kind: 'event', id, event } satisfies WorkerReply);
  };
  runBatch(batch, onEvent).then(
    (result) => {
      flushSteps();
      port.postMessage({ kind: 'result', id, result: portableResult(result) } satisfies WorkerReply);
    },
    (error: unknown) => {
      port.postMessage({ kind: 'crash', id, message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) } satisfies WorkerReply);
    },
  );
});
