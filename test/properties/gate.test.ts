// The gate command: option parsing is pure, exit codes follow the results, and a
// run against the canary exits 1 with a replay line (never green).
import { describe, expect, it } from 'vitest';
import { gateExitCode, parseGateOptions, runGate } from '../../cli/commands/gate.js';
import { CliError } from '../../cli/fatal.js';
import { emptyCoverage, type RunResult } from '../../properties/index.js';

const drawn = () => 77;

describe('gate options', () => {
  it('fills defaults and draws a seed only when none is given', () => {
    const o = parseGateOptions({}, drawn);
    expect(o).toMatchObject({ impl: 'ts', runs: undefined, seed: 77, seedGiven: false, path: undefined });
    expect(o.properties).toEqual(['readsAndOutcomes', 'structure', 'reopen', 'space', 'qemuJudges', 'handoff']);
    expect(parseGateOptions({ seed: 'abcdef0', property: 'space', runs: '3' }, drawn)).toMatchObject({ seedGiven: true, properties: ['space'], runs: 3 });
  });

  it('refuses bad values with usage errors (exit 2)', () => {
    for (const raw of [{ impl: 'c' }, { runs: '0' }, { seed: 'x' }, { property: 'nope' }, { path: '1:2' }, { path: '1', seed: '1' }]) {
      expect(() => parseGateOptions(raw, drawn)).toThrow(CliError);
    }
  });

  it('exit code: failure 1 beats cannot-run 2 beats passed 0', () => {
    const base = { property: 'p', impl: 'ts' as const, runs: 1, coverage: emptyCoverage(), timeMs: 0 };
    const passed: RunResult = { ...base, status: 'passed' };
    const cannot: RunResult = { ...base, status: 'oracle-unavailable', message: 'm', cause: undefined };
    const harness: RunResult = { ...base, status: 'harness-error', message: 'm', cause: undefined };
    expect(gateExitCode([passed])).toBe(0);
    expect(gateExitCode([passed, cannot])).toBe(2);
    expect(gateExitCode([harness])).toBe(2);
    expect(gateExitCode([cannot, { ...base, status: 'property-failed', counterexample: { options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 512 }, steps: [] }, shrinks: 0, failure: { kind: 'violation', check: 'read', message: 'x' }, replay: 'r', cause: undefined }])).toBe(1);
  });
});

describe('gate run', () => {
  it('catches the canary, prints the seed first and the replay line', async () => {
    const lines: string[] = [];
    const code = await runGate(parseGateOptions({ impl: 'canary', seed: '5', runs: '20', property: 'readsAndOutcomes' }, drawn), (l) => lines.push(l));
    expect(code).toBe(1);
    expect(lines[0]).toBe('qcow2-verify gate: seed 5, impl canary');
    expect(lines.at(-1)).toMatch(/^Replay: qcow2-verify gate --impl canary --property readsAndOutcomes --seed 5 --path "[\d:]+"$/);
  });
});
