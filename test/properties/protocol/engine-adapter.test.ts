// Our engine as a subprocess adapter (qcow2-verify adapter), the protocol's
// reference implementation, through the whole gate: every property that
// applies to a read-write cmd: implementation, the readers included. It runs
// the built CLI (dist/, which npm test's pretest builds).
import { existsSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EngineAdapter } from '../../../cli/adapter/engine-adapter.js';
import { parseGateOptions, runGate } from '../../../cli/commands/gate.js';
import type { ImageOptions } from '../../../model/index.js';
import { formatText, replayOps, type Step } from '../../../properties/index.js';

const engineAdapter = 'cmd:node dist/cli/main.js adapter';

describe('the engine adapter', () => {
  it('answers refusals with the model error kind, bad requests with failed, and keeps going', async () => {
    const adapter = new EngineAdapter('test');
    const answer = async (line: string) => JSON.parse((await adapter.answer(line)).line) as Record<string, unknown>;
    expect(await answer('{"id":0,"op":"hello","protocol":1}')).toMatchObject({ id: 0, ok: true, protocol: 1, mode: 'read-write' });
    expect(await answer('{"id":1,"op":"write","offset":0,"length":1,"data":"AA=="}')).toEqual({ id: 1, ok: false, error: 'failed', message: 'RequestError: no image is open' });
    expect(await answer('not json')).toEqual({ id: -1, ok: false, error: 'failed', message: 'the request is not JSON' });
    expect(await answer('{"id":2,"op":"frobnicate"}')).toEqual({ id: 2, ok: false, error: 'failed', message: 'RequestError: unknown request "frobnicate"' });
    expect(await adapter.answer('{"id":3,"op":"quit"}')).toEqual({ line: '{"id":3,"ok":true}', quit: true });
  });

  it('builds backing chains through the protocol: overlays (qcow2, raw), COW, commit and rebase, every layer judged', async () => {
    expect(existsSync('dist/cli/main.js'), 'the gate runs the built CLI: npm run build (npm test does)').toBe(true);
    const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 };
    const ops: Step[] = [
      { kind: 'write', offset: 0, length: 0x10000, pattern: 0, seed: 3 },
      { kind: 'createOverlay', backingFormat: 'raw', options: { ...v3, clusterBits: 9, virtualSize: 98304 } },
      { kind: 'write', offset: 0x2100, length: 0x100, pattern: 0x22 },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 131072, lazyRefcounts: true } },
      { kind: 'write', offset: 0x3000, length: 0x1000, pattern: 0x33 },
      { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
      { kind: 'write', offset: 0x1000, length: 0x2000, pattern: 0x44 },
      { kind: 'commit' },
      { kind: 'rebase', depth: 2, unsafe: false },
      { kind: 'reopen' },
      { kind: 'rebase', depth: 0, unsafe: true },
      { kind: 'read', offset: 0, length: 0x10000 },
    ];
    const result = await replayOps({ impl: engineAdapter, options: v3, ops, properties: ['readsAndOutcomes', 'structure', 'space', 'qemuJudges'] });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.chains).toMatchObject({ commit: 1, 'rebase:safe': 1, 'rebase:unsafe': 1, 'overlay:raw': 1, 'sequences-at-depth:3': 1 });
  });

  it('passes the gate as a cmd: implementation (all properties but handoff and crashConsistency)', async () => {
    expect(existsSync('dist/cli/main.js'), 'the gate runs the built CLI: npm run build (npm test does)').toBe(true);
    const seed = fc.readConfigureGlobal().seed as number;
    const lines: string[] = [];
    const code = await runGate(parseGateOptions({ impl: engineAdapter, seed: String(seed), runs: '2', workers: '1' }, () => 0), (l) => lines.push(l));
    const text = lines.join('\n');
    expect(code, text).toBe(0);
    expect(text).toContain('implementation: qcow2-verify engine 0.1.0, read-write');
    expect(text).toContain('summary: 7/7 properties held');
    expect(text).toContain('left out: properties handoff (its driver is built in (our engine and QEMU)), crashConsistency (the adapter protocol has no fault injection: crashes and I/O errors are injected into our engine and QEMU only); features the gate does not draw yet: external-data');
  });
});
