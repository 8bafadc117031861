// `--impl cmd:…` through the runner and the gate, with misbehaving programs
// (fake-adapter.mjs): a breach of the protocol is the verdict "the
// implementation failed" with the transcript's tail, the handshake decides what
// is drawn, and the summary says what was left out.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseGateOptions, runGate } from '../../../cli/commands/gate.js';
import { formatText, runProperty, type ImplName } from '../../../properties/index.js';
import type { ImageOptions } from '../../../model/index.js';
import type { SwarmWeights } from '../../../properties/arbitraries/swarm.js';

const fake = (mode: string): ImplName => `cmd:node ${fileURLToPath(new URL('./fake-adapter.mjs', import.meta.url))} ${mode}`;

async function gate(impl: ImplName, property = 'readsAndOutcomes'): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await runGate(parseGateOptions({ impl, seed: '11', runs: '2', property, workers: '1' }, () => 0), (l) => lines.push(l));
  return { code, text: lines.join('\n') };
}

describe('a cmd: implementation under the gate', () => {
  it('a crash at the first write: the implementation failed, with the transcript tail, exit 1', async () => {
    const { code, text } = await gate(fake('crash'));
    expect(code).toBe(1);
    expect(text).toContain('implementation: fake crash, read-write');
    expect(text).toMatch(/Failure: implementation error in write [^:]+: the implementation failed \(crash\): the process exited \(exit code 3\)/);
    expect(text).toMatch(/transcript tail \(> to it, < from it, ! its stderr\):\n {2}> \{"id":0,"op":"hello","protocol":1\}/);
    expect(text).toContain('  ! fake: about to crash');
    expect(text).toMatch(/^Replay: qcow2-verify gate --impl 'cmd:node \S+fake-adapter\.mjs crash' --property readsAndOutcomes --seed 11 --path "[\d:]+"$/m);
  });

  it('garbage and out-of-turn answers are failures of their own kind', async () => {
    const run = (mode: string) => runProperty({ property: 'readsAndOutcomes', impl: fake(mode), seed: 3, numRuns: 1, shrinkAttemptsMax: 0 }).then(formatText);
    expect(await run('garbage')).toContain('the implementation failed (garbage): stdout line is no answer: not JSON');
    expect(await run('out-of-turn')).toMatch(/the implementation failed \(out-of-turn\): an answer with id \d+ while request \d+ was/);
  });

  it('--request-timeout sets the timeout of every request', () => {
    expect(parseGateOptions({ impl: fake('hang'), requestTimeout: '2m' }, () => 0).requestTimeoutMs).toBe(120_000);
    expect(parseGateOptions({ impl: fake('hang') }, () => 0).requestTimeoutMs).toBeUndefined();
    expect(() => parseGateOptions({ impl: fake('hang'), requestTimeout: 'soon' }, () => 0)).toThrow('--request-timeout must look like 90s, 10m or 2h, got "soon"');
    expect(() => parseGateOptions({ impl: 'cmd:' }, () => 0)).toThrow('--impl must be ts, qemu, canary or cmd:<command line>, got cmd:');
  });

  it('a failed handshake is the verdict, before any property runs', async () => {
    const { code, text } = await gate(fake('bad-hello'));
    expect(code).toBe(1);
    expect(text).toContain('the implementation failed its handshake: handshake field protocol is 99, expected 1');
    expect(text).toContain('summary: not judged: the implementation failed');
  });

  it('draws only what the handshake declares, and the summary says what it left out', async () => {
    const drawn: { options: ImageOptions; swarm: SwarmWeights }[] = [];
    const result = await runProperty({
      property: 'readsAndOutcomes',
      impl: fake('failed'),
      seed: 3,
      numRuns: 1,
      shrinkAttemptsMax: 0,
      onSequence: (options, swarm) => drawn.push({ options, swarm }),
    });
    expect(result.status).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    expect(result.failure).toMatchObject({ kind: 'implementation-error', message: 'failed: EIO on the fake disk' });
    expect(drawn.length).toBeGreaterThan(0);
    for (const { options, swarm } of drawn) {
      expect([options.version, options.clusterBits, options.refcountBits]).toEqual([3, 16, 16]);
      const on = Object.entries(swarm).filter(([, w]) => w > 0).map(([k]) => k);
      expect(on.every((k) => k === 'write' || k === 'read'), on.join(' ')).toBe(true);
    }
  });

  it('a property that does not apply is not judged (exit 2); the summary says what was left out and why', async () => {
    const { code, text } = await gate(fake('failed'), 'handoff');
    expect(code).toBe(2);
    expect(text).toMatch(
      /^left out: properties handoff \(its driver is built in \(our engine and QEMU\)\); version 2 images; cluster bits outside 16\.\.16; refcount widths 1, 2, 4, 8, 32, 64; ops writeCompressed, writeZeroes, discard, resize, snapshotCreate, snapshotRevert, snapshotDelete, flush, reopen; features not declared: compressed, backing, extended-l2, zstd; features the gate does not draw yet: external-data$/m,
    );
    expect(text).toContain('summary: not judged: no selected property applies to');
  });
});
