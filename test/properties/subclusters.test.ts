// Extended-L2 images in the generators and the gate: the options drawn are ones
// qemu-img accepts, sequences walked through the model reach every subcluster
// corner the histogram names, and the properties hold on them against our
// engine and against qemu-io (judged by qemu-img check, compare and map).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { initialState, step, validateOptions } from '../../model/index.js';
import { emptyCoverage, formatText, imageOptions, runProperty, sequence } from '../../properties/index.js';
import type { StepCommand } from '../../properties/commands/index.js';
import { recordStep } from '../../properties/coverage.js';

describe('extended-L2 images', () => {
  it('are drawn only where asked, with options qemu-img accepts', () => {
    expect(fc.sample(imageOptions(), { seed: 7, numRuns: 200 }).some((o) => 'extendedL2' in o)).toBe(false);
    const drawn = fc.sample(imageOptions({ extendedL2Percent: 100 }), { seed: 7, numRuns: 200 });
    for (const o of drawn) {
      expect(() => validateOptions(o)).not.toThrow();
      expect(o).toMatchObject({ extendedL2: true, version: 3 });
      expect(o.clusterBits).toBeGreaterThanOrEqual(14);
    }
    expect(new Set(drawn.map((o) => o.clusterBits))).toContain(14);
  });

  it('reach every subcluster corner at a fixed seed', () => {
    const cov = emptyCoverage();
    const samples = fc.sample(sequence({ image: { extendedL2Percent: 100 }, swarm: { allOn: true }, commandsCountMax: 60 }), { seed: 20261130, numRuns: 60 });
    for (const seq of samples) {
      let state = initialState(seq.options);
      for (const cmd of seq.commands as Iterable<StepCommand>) {
        const s = cmd.resolve(state);
        recordStep(cov, state, s);
        if (s.kind !== 'read' && s.kind !== 'crash' && s.kind !== 'ioError') state = step(state, s).state;
      }
    }
    for (const key of ['allocated', 'zero', 'unallocated', 'mixed-clusters', 'partial-cow', 'one-subcluster']) {
      expect(cov.subclusters[key] ?? 0, key).toBeGreaterThan(0);
    }
    expect(cov.clusterKinds['mixed-shared'] ?? 0).toBeGreaterThan(0);
  });

  it('every property holds on extended-L2 sequences against our engine', async () => {
    for (const property of ['readsAndOutcomes', 'structure', 'reopen', 'space'] as const) {
      const result = await runProperty({ property, impl: 'ts', seed: 30, numRuns: 6, sequence: { image: { extendedL2Percent: 100 } } });
      expect(result.status, formatText(result)).toBe('passed');
      expect(result.coverage.extendedL2).toBe(6);
    }
  });

  it('qemuJudges holds on extended-L2 sequences run by qemu-io', async () => {
    // 16-bit refcounts and no resize keep out the known QEMU divergences (the
    // overflow leak, stale bytes after shrink then grow)
    const result = await runProperty({
      property: 'qemuJudges',
      impl: 'qemu',
      seed: 14,
      numRuns: 4,
      sequence: { image: { extendedL2Percent: 100, refcountBits: [16], virtualSizeMax: 1024 * 1024 }, swarm: { off: ['resize'] }, commandsCountMax: 25 },
    });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.extendedL2).toBe(4);
    expect(result.coverage.subclusters['mixed-clusters'] ?? 0).toBeGreaterThan(0);
  });
});
