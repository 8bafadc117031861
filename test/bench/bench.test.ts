import { describe, expect, it, vi } from 'vitest';
import { parseIoCommand } from '../../cli/io-commands/parse.js';
import { measure, parseGnuTimeMaxRssKiB, parseVmHwmKiB } from '../../bench/measure.js';
import { parseBenchArgs } from '../../bench/options.js';
import { formatGateTable, gateTotals, sequencesPerMinute, type GateRun } from '../../bench/gate.js';
import { formatTable, ratio, type BenchRow } from '../../bench/table.js';
import { randomWriteScript, xorshift32 } from '../../bench/workloads.js';

describe('bench measurement', () => {
  it('reads the peak RSS from GNU time -v and from /proc status', () => {
    const report = '\tUser time (seconds): 0.01\n\tMaximum resident set size (kbytes): 41236\n\tExit status: 0\n';
    expect(parseGnuTimeMaxRssKiB(report)).toBe(41236);
    expect(() => parseGnuTimeMaxRssKiB('nothing here')).toThrow(/Maximum resident set size/);
    expect(parseVmHwmKiB('Name:\tnode\nVmPeak:\t  100 kB\nVmHWM:\t   5120 kB\nVmRSS:\t 4000 kB\n')).toBe(5120);
  });

  it('measures a child process and reports its failure with stderr', async () => {
    const m = await measure(process.execPath, ['-e', 'process.stdin.resume(); process.stdin.on("end", () => {})'], 'x\n');
    expect(m.wallSeconds).toBeGreaterThan(0);
    expect(m.peakRssBytes).toBeGreaterThan(1 << 20); // node itself needs megabytes
    await expect(measure(process.execPath, ['-e', 'console.error("boom"); process.exit(3)'])).rejects.toThrow(/exited with 3: .*boom/s);
  });
});

describe('bench workloads', () => {
  it('xorshift32 is a fixed stream', () => {
    const a = xorshift32(7);
    const b = xorshift32(7);
    const seq = [a(), a(), a()];
    expect([b(), b(), b()]).toEqual(seq);
    expect(new Set(seq).size).toBe(3);
  });

  it('the random-write script is deterministic, in range and valid qemu-io', () => {
    const script = randomWriteScript(200, 1 << 30, 5);
    expect(randomWriteScript(200, 1 << 30, 5)).toBe(script);
    expect(randomWriteScript(200, 1 << 30, 6)).not.toBe(script);
    const lines = script.trimEnd().split('\n');
    expect(lines).toHaveLength(200);
    for (const line of lines) {
      const command = parseIoCommand(line);
      expect(command.kind).toBe('write');
      if (command.kind !== 'write') continue;
      expect(command.length).toBe(4096);
      expect(command.offset % 4096).toBe(0);
      expect(command.offset + command.length).toBeLessThanOrEqual(1 << 30);
      expect(command.pattern).not.toBe(0);
    }
  });
});

describe('bench options and table', () => {
  it('parses the documented options with defaults', () => {
    expect(parseBenchArgs([])).toEqual({ sizeMiB: 256, writes: 20000, seed: 20261125, jsonFile: undefined, cpuProfDir: undefined, gateRuns: undefined, gatesOnly: false });
    expect(parseBenchArgs(['--gate-runs', '5', '--gates-only'])).toMatchObject({ gateRuns: 5, gatesOnly: true });
    expect(parseBenchArgs(['--size', '64', '--writes', '100', '--json', 'out.json'])).toMatchObject({ sizeMiB: 64, writes: 100, jsonFile: 'out.json' });
  });

  it('refuses --size 0 with commander\'s one-line error on stderr, captured here (npm test prints no stray errors)', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(() => parseBenchArgs(['--size', '0'])).toThrow(/positive integer/);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toBe("error: option '--size <MiB>' argument '0' is invalid. expected a positive integer, got '0'\n");
    } finally {
      stderr.mockRestore();
    }
  });

  it('prints one Markdown row per workload with MiB/s and ratio', () => {
    const row: BenchRow = {
      workload: 'w',
      bytes: 8 << 20,
      engine: { wallSeconds: 2, peakRssBytes: 50 << 20 },
      qemu: { wallSeconds: 1, peakRssBytes: 20 << 20 },
    };
    expect(ratio(row)).toBe(2);
    const lines = formatTable([row]).split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('| w | 2.00 | 4.0 | 50.0 | 1.00 | 8.0 | 20.0 | 2.00 |');
    expect(formatTable([{ ...row, bytes: 0 }]).split('\n')[2]).toBe('| w | 2.00 | - | 50.0 | 1.00 | - | 20.0 | 2.00 |');
  });
});

describe('bench gate rows', () => {
  it('counts sequences and operations over every result of a gate --json file, continuations included', () => {
    const json = { results: [{ coverage: { sequences: 12, operations: 300 } }, { coverage: { sequences: 8, operations: 150 } }] };
    expect(gateTotals(json)).toEqual({ sequences: 20, operations: 450 });
  });

  it('prints sequences per minute and the verdict', () => {
    const run: GateRun = { impl: 'qemu', runs: undefined, sequences: 90, operations: 2000, exitCode: 1, measurement: { wallSeconds: 45, peakRssBytes: 100 << 20 } };
    expect(sequencesPerMinute(run)).toBe(120);
    expect(formatGateTable([run, { ...run, impl: 'ts', runs: 5, exitCode: 0 }]).split('\n').slice(2)).toEqual([
      '| gate --impl qemu (default budget) | 90 | 2000 | 45.0 | 120 | 100.0 | a property failed |',
      '| gate --impl ts --runs 5 | 90 | 2000 | 45.0 | 120 | 100.0 | held |',
    ]);
  });
});
