// The adapter session against misbehaving programs (fake-adapter.mjs): each
// breach of the protocol ends the session with its own AdapterFailure kind and
// the transcript's tail; the timeout runs on a fake clock, so nothing here
// depends on the machine's speed.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AdapterFailure, AdapterSession, type Timers } from '../../../properties/protocol/session.js';

const fake = (mode: string) => `node ${fileURLToPath(new URL('./fake-adapter.mjs', import.meta.url))} ${mode}`;

/** Timers that fire only when the test says so. */
class FakeTimers implements Timers {
  readonly pending = new Map<number, { callback: () => void; ms: number }>();
  private next = 0;
  setTimeout(callback: () => void, ms: number): unknown {
    this.pending.set(++this.next, { callback, ms });
    return this.next;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    for (const [id, t] of [...this.pending]) {
      this.pending.delete(id);
      t.callback();
    }
  }
}

async function failureOf(promise: Promise<unknown>): Promise<AdapterFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AdapterFailure);
  return error as AdapterFailure;
}

const write = { op: 'write', offset: 0, length: 1, data: 'AA==' } as const;

describe('adapter session', () => {
  it('answers in turn, and ends with quit', async () => {
    const session = AdapterSession.start(fake('well-behaved'));
    const hello = await session.request({ op: 'hello', protocol: 1 });
    expect(hello).toMatchObject({ id: 0, ok: true, body: { name: 'fake', version: 'well-behaved' } });
    expect(await session.request(write)).toMatchObject({ id: 1, ok: true });
    await session.close();
    expect(session.tail()).toEqual([
      '> {"id":0,"op":"hello","protocol":1}',
      expect.stringMatching(/^< \{"id":0,"ok":true,"protocol":1,"name":"fake"/),
      '> {"id":1,"op":"write","offset":0,"length":1,"data":"AA=="}',
      '< {"id":1,"ok":true}',
      '> {"id":2,"op":"quit"}',
      '< {"id":2,"ok":true}',
    ]);
  });

  it('a crash: the exit status and the stderr lines are in the failure', async () => {
    const session = AdapterSession.start(fake('crash'));
    await session.request({ op: 'hello', protocol: 1 });
    const failure = await failureOf(session.request(write));
    expect(failure.kind).toBe('crash');
    expect(failure.detail).toBe('the process exited (exit code 3)');
    expect(failure.transcriptTail.slice(-2)).toEqual(['> {"id":1,"op":"write","offset":0,"length":1,"data":"AA=="}', '! fake: about to crash']);
    expect(failure.message).toMatch(/^the implementation failed \(crash\)/);
    // the session is over: every later request gets the same failure
    expect(await failureOf(session.request(write))).toBe(failure);
    await session.close();
  });

  it('garbage on stdout', async () => {
    const session = AdapterSession.start(fake('garbage'));
    await session.request({ op: 'hello', protocol: 1 });
    const failure = await failureOf(session.request(write));
    expect([failure.kind, failure.detail]).toEqual(['garbage', 'stdout line is no answer: not JSON']);
    expect(failure.transcriptTail.at(-1)).toBe('< this is not JSON');
    await session.close();
  });

  it('an answer out of turn', async () => {
    const session = AdapterSession.start(fake('out-of-turn'));
    await session.request({ op: 'hello', protocol: 1 });
    const failure = await failureOf(session.request(write));
    expect([failure.kind, failure.detail]).toEqual(['out-of-turn', 'an answer with id 8 while request 1 was']);
    await session.close();
  });

  it('a hang: the request times out on the clock, and the process is killed', async () => {
    const timers = new FakeTimers();
    const session = AdapterSession.start(fake('hang'), { timers, requestTimeoutMs: 5000 });
    await session.request({ op: 'hello', protocol: 1 });
    expect(timers.pending.size).toBe(0);
    const pending = session.request(write);
    expect([...timers.pending.values()].map((t) => t.ms)).toEqual([5000]);
    timers.fireAll();
    const failure = await failureOf(pending);
    expect([failure.kind, failure.detail]).toEqual(['timeout', 'no answer to request 1 (write) within 5000 ms']);
    // killed: close returns without waiting for a quit it would never answer
    await session.close();
  });

  it('a command that does not exist is a crash of the shell, with its message', async () => {
    const session = AdapterSession.start('/nonexistent/adapter --flag');
    const failure = await failureOf(session.request({ op: 'hello', protocol: 1 }));
    expect(failure.kind).toBe('crash');
    expect(failure.detail).toBe('the process exited (exit code 127)');
    expect(failure.transcriptTail.join('\n')).toMatch(/nonexistent/);
  });
});
