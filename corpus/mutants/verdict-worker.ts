// Worker-thread entry of the watchdog (watchdog.ts): computes our verdict for
// each mutant it is sent, reporting the phase it enters so that a hang can be
// attributed, and the ArrayBuffer memory it holds after each phase (V8's heap
// limit does not cover ArrayBuffers, so a table sized by an unchecked field
// shows up here instead). `spin` and `allocate` exist only so tests can prove
// that the watchdog catches a hang and a heap blow-up.
import { parentPort } from 'node:worker_threads';
import { ourVerdict } from './our-verdict.js';

export type WorkerRequest =
  | { readonly kind: 'evaluate'; readonly id: number; readonly bytes: Uint8Array }
  | { readonly kind: 'spin'; readonly id: number }
  | { readonly kind: 'allocate'; readonly id: number };

export type WorkerMessage =
  | { readonly kind: 'phase'; readonly id: number; readonly phase: string; readonly arrayBuffers: number }
  | { readonly kind: 'done'; readonly id: number; readonly verdict: Awaited<ReturnType<typeof ourVerdict>>; readonly arrayBuffers: number };

const port = parentPort;
if (port === null) throw new Error('verdict-worker.js must run as a worker thread');

port.on('message', (request: WorkerRequest) => {
  switch (request.kind) {
    case 'evaluate':
      void ourVerdict(request.bytes, (phase) => {
        port.postMessage({ kind: 'phase', id: request.id, phase, arrayBuffers: process.memoryUsage().arrayBuffers } satisfies WorkerMessage);
      }).then((verdict) => {
        port.postMessage({ kind: 'done', id: request.id, verdict, arrayBuffers: process.memoryUsage().arrayBuffers } satisfies WorkerMessage);
      });
      break;
    case 'spin':
      port.postMessage({ kind: 'phase', id: request.id, phase: 'spin', arrayBuffers: 0 } satisfies WorkerMessage);
      for (;;) {
        // never returns: the watchdog must time out
      }
    case 'allocate': {
      port.postMessage({ kind: 'phase', id: request.id, phase: 'allocate', arrayBuffers: 0 } satisfies WorkerMessage);
      const hoard: number[][] = [];
      for (;;) hoard.push(Array.from({ length: 1 << 16 }, (_, i) => i));
    }
    default: {
      const never: never = request;
      throw new Error(`unknown request ${JSON.stringify(never)}`);
    }
  }
});
