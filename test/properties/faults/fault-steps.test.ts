// Fault steps are data like any step: they print as one line, survive the
// corpus format, and a property failure that ends in one replays exactly.
import { describe, expect, it } from 'vitest';
import { parseCase } from '../../../corpus/case/parse.js';
import { serializeCase } from '../../../corpus/case/serialize.js';
import type { PropertyFailureCase } from '../../../corpus/case/types.js';
import { formatStep, replayOps, type Step } from '../../../properties/index.js';

const steps: Step[] = [
  { kind: 'write', offset: 0, length: 4096, pattern: 0xab },
  { kind: 'crash', seed: 7 },
  { kind: 'crash', seed: -3, during: { op: { kind: 'flush' }, access: 'flush', nth: 2 } },
  { kind: 'ioError', op: { kind: 'discard', offset: 512, length: 1024 }, access: 'write', nth: 1, errno: 'ENOSPC', persistent: true },
];
const options = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: true, virtualSize: 1 << 20 } as const;

describe('fault steps', () => {
  it('print as one line each', () => {
    expect(steps.slice(1).map(formatStep)).toEqual([
      'crash <seed 7>',
      'crash <seed -3> at flush#2 of: flush',
      'ioError write#1 ENOSPC until-cleared: discard 0x200 0x400',
    ]);
  });

  it('round-trip through the corpus format, and a malformed one names its field', () => {
    const c: PropertyFailureCase = {
      format: 1,
      implementation: 'ts',
      status: 'open',
      description: 'fault steps',
      message: 'x',
      seed: 1,
      path: '1',
      found: { tool: 'qcow2-verify', qemu: '7.2.22', date: '2026-11-30' },
      kind: 'property-failure',
      property: 'crashConsistency',
      signature: 'crashConsistency/x',
      options,
      ops: steps,
    };
    expect(parseCase(JSON.parse(serializeCase(c)), 'x.json')).toEqual(c);
    const bad = { ...c, ops: [{ kind: 'ioError', op: { kind: 'reopen' }, access: 'write', nth: 1, errno: 'EIO', persistent: false }] };
    expect(() => parseCase(JSON.parse(JSON.stringify(bad)), 'x.json')).toThrow(/ops\[0\]\.op\.kind/);
  });

  it('replay on our engine: the faults are injected again and the engine holds', async () => {
    const result = await replayOps({ impl: 'ts', options, ops: steps, properties: ['crashConsistency'] });
    expect(result.status).toBe('passed');
    expect(result.coverage.faults['crash@inside flush'] ?? result.coverage.faults['crash@flush']).toBeGreaterThan(0);
  });

  it('an I/O error the op never meets is counted as not reached, by operation', async () => {
    // a write makes no 99th flush: the op runs as any other
    const unmet: Step = { kind: 'ioError', op: { kind: 'write', offset: 0, length: 512, pattern: 1 }, access: 'flush', nth: 99, errno: 'EIO', persistent: false };
    const result = await replayOps({ impl: 'ts', options, ops: [unmet], properties: ['crashConsistency'] });
    expect(result.status).toBe('passed');
    expect(result.coverage.faults).toMatchObject({ 'ioError@write': 1, 'ioError:not reached': 1 });
  });
});
