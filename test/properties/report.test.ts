// Report formatters and seed parsing: the text a user pastes must be exact.
import { describe, expect, it } from 'vitest';
import { emptyCoverage, formatJson, formatJunit, formatText, hashSeed, parseSeed, replayCommand, SeedError, type RunResult } from '../../properties/index.js';
import { portableResult } from '../../cli/commands/gate-batch.js';

const failed: RunResult = {
  status: 'property-failed',
  property: 'structure',
  impl: 'ts',
  seed: 42,
  runs: 7,
  coverage: emptyCoverage(),
  timeMs: 1500,
  path: '6:1:0',
  counterexample: {
    options: { version: 3, clusterBits: 9, refcountBits: 1, lazyRefcounts: false, virtualSize: 4096 },
    steps: [
      { kind: 'write', offset: 0, length: 512, pattern: 0, seed: 5 },
      { kind: 'snapshotCreate', name: 'base' },
      { kind: 'read', offset: 0, length: 16 },
    ],
  },
  shrinks: 3,
  failure: { kind: 'violation', check: 'structure', message: '[structure] after snapshot -c base: refcounts differ <&>' },
  replay: replayCommand('ts', 'structure', 42, '6:1:0'),
  cause: new Error('boom'),
};

describe('report', () => {
  it('text starts like fast-check and ends with the replay line', () => {
    const lines = formatText(failed).split('\n');
    expect(lines[0]).toBe('Property failed after 7 runs');
    expect(lines[1]).toBe('{ seed: 42, path: "6:1:0" }');
    expect(lines).toContain('Counterexample:');
    expect(lines).toContain('  write -s <seed 5> 0x0 0x200');
    expect(lines).toContain('  snapshot -c base');
    expect(lines).toContain('  read 0x0 0x10');
    expect(lines).toContain('Shrunk 3 times');
    expect(lines.at(-1)).toBe('Replay: qcow2-verify gate --impl ts --property structure --seed 42 --path "6:1:0"');
  });

  it('json keeps the data and reduces the cause to text', () => {
    const parsed = JSON.parse(formatJson([failed])) as { results: Record<string, unknown>[] };
    const r = parsed.results[0]!;
    expect(r.status).toBe('property-failed');
    expect(r.seed).toBe(42);
    expect(r.script).toEqual(['write -s <seed 5> 0x0 0x200', 'snapshot -c base', 'read 0x0 0x10']);
    expect((r.cause as { message: string }).message).toBe('boom');
  });

  it('junit marks failures and cannot-run results, escaped', () => {
    const unavailable: RunResult = { status: 'oracle-unavailable', property: 'qemuJudges', impl: 'ts', seed: 1, runs: 0, coverage: emptyCoverage(), timeMs: 0, message: 'qemu-img not found on PATH', cause: undefined };
    const xml = formatJunit([failed, unavailable]);
    expect(xml).toContain('tests="2" failures="1" errors="1"');
    expect(xml).toContain('<failure message="qcow2-verify gate --impl ts --property structure --seed 42 --path &quot;6:1:0&quot;"');
    expect(xml).toContain('refcounts differ &lt;&amp;&gt;');
    expect(xml).toContain('<error message="qemu-img not found on PATH" type="oracle-unavailable">');
  });
});

describe('seed', () => {
  it('takes integers and git SHAs, rejects the rest', () => {
    expect(parseSeed('1234')).toBe(1234);
    expect(parseSeed('-5')).toBe(-5);
    const sha = '799ce64a1b2c3d4e5f60718293a4b5c6d7e8f901';
    expect(parseSeed(sha)).toBe(hashSeed(sha));
    expect(parseSeed(sha.toUpperCase())).toBe(parseSeed(sha));
    expect(parseSeed('799ce64')).not.toBe(parseSeed(sha));
    expect(() => parseSeed('2147483648')).toThrow(SeedError);
    expect(() => parseSeed('main')).toThrow(SeedError);
  });
});

describe('the JSON cause of a result from a worker thread', () => {
  it('keeps the name and message a thread crossing reduced the Error to', () => {
    const crossed: RunResult = {
      status: 'harness-error',
      property: 'space',
      impl: 'qemu',
      seed: 1,
      runs: 0,
      coverage: emptyCoverage(),
      timeMs: 0,
      message: 'm',
      cause: (portableResult({
        status: 'harness-error',
        property: 'space',
        impl: 'qemu',
        seed: 1,
        runs: 0,
        coverage: emptyCoverage(),
        timeMs: 0,
        message: 'm',
        cause: new TypeError('boom'),
      }) as Extract<RunResult, { status: 'harness-error' }>).cause,
    } as RunResult;
    const json = JSON.parse(formatJson([crossed])) as { results?: { cause: unknown }[] } | { cause: unknown }[];
    const first = Array.isArray(json) ? json[0] : json.results?.[0];
    expect(first?.cause).toMatchObject({ name: 'TypeError', message: 'boom' });
  });
});
