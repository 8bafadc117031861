// The handoff property: one image file passed between our engine and QEMU at
// every reopen, judged at the end by qemu-img check, compare and map. Also the
// map agreement on its own, and the QEMU holder's workarounds for the known
// QEMU 7.2 divergences (which `gate --impl qemu` judges instead).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { initialState, step, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import { withTempDir, type QemuMapEntry } from '../../oracle/index.js';
import { judgeMap, mapDisagreement } from '../../properties/checks/qemu-map.js';
import { createHandoffDriver, imageCreator } from '../../properties/drivers/handoff.js';
import { formatText, PropertyViolation, replayOps, runProperty, type Step } from '../../properties/index.js';

const run = promisify(execFile);
const entry = (start: number, length: number, flags: Partial<QemuMapEntry>): QemuMapEntry => ({
  start,
  length,
  depth: 0,
  present: false,
  zero: true,
  data: false,
  ...flags,
});

function stateAfter(options: ImageOptions, ops: readonly Op[]): ModelState {
  return ops.reduce((s, op) => step(s, op).state, initialState(options));
}

describe('qemu-img map agreement', () => {
  const model = [
    { start: 0, length: 1024, kind: 'data' as const, depth: 0 },
    { start: 1024, length: 512, kind: 'zero' as const, depth: 0 },
    { start: 1536, length: 512, kind: 'unallocated' as const, depth: 0 },
  ];

  it('agrees across QEMU splits, and a sparse data range (data and zero) is data', () => {
    const qemu = [
      entry(0, 512, { present: true, zero: false, data: true, offset: 4096 }),
      entry(512, 512, { present: true, zero: true, data: true, offset: 9216 }),
      entry(1024, 512, { present: true }),
      entry(1536, 512, {}),
    ];
    expect(mapDisagreement(model, qemu, 2048)).toBeUndefined();
  });

  it('names the first guest offset where the kinds differ, a short map and a backing layer', () => {
    expect(mapDisagreement(model, [entry(0, 1024, { present: true, zero: false, data: true }), entry(1024, 1024, {})], 2048)).toMatch(
      /^guest offset 0x400: qemu-img map says unallocated .*the model says zero/,
    );
    expect(mapDisagreement(model, [entry(0, 1024, { present: true, zero: false, data: true })], 2048)).toMatch(/qemu-img map ends at 0x400/);
    expect(mapDisagreement(model, [entry(0, 2048, { depth: 1 })], 2048)).toMatch(/depth 1/);
    expect(mapDisagreement(model, [entry(0, 1024, { present: true, zero: false, data: false })], 2048)).toMatch(/no cluster kind/);
  });

  it('judges a real image: agrees with the model of its ops, and throws qemu-img-map for another model', async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, 'm.qcow2');
      const options: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 + 1536 };
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', path, String(options.virtualSize)]);
      await run('qemu-io', ['-c', 'write -P 1 0 4k', '-c', 'write -z 8k 4k', '-c', 'write -P 2 64k 1536', path]);
      const ops: Op[] = [
        { kind: 'write', offset: 0, length: 4096, pattern: 1 },
        { kind: 'writeZeroes', offset: 8192, length: 4096, unmap: false },
        { kind: 'write', offset: 65536, length: 1536, pattern: 2 },
      ];
      await judgeMap(path, stateAfter(options, ops));
      const other = stateAfter(options, [...ops, { kind: 'writeZeroes', offset: 16384, length: 4096, unmap: true }]);
      const error = await judgeMap(path, other).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PropertyViolation);
      expect((error as PropertyViolation).check).toBe('qemu-img-map');
      expect((error as Error).message).toMatch(/guest offset 0x4000: qemu-img map says unallocated/);
    });
  });
});

describe('handoff driver', () => {
  it('creates with one program, opens with the other, and changes hands at every reopen', async () => {
    const options: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: true, virtualSize: 8192 };
    const creator = imageCreator(options);
    const opener = creator === 'ts' ? 'qemu' : 'ts';
    const driver = await createHandoffDriver(options);
    try {
      expect(driver.name).toContain(`now held by ${opener}`);
      expect(await driver.apply({ kind: 'write', offset: 100, length: 1000, pattern: 0, seed: 3 })).toEqual({ ok: true });
      const written = await driver.read(0, 2048);
      expect(await driver.apply({ kind: 'reopen' })).toEqual({ ok: true });
      expect(driver.name).toContain(`now held by ${creator}`);
      expect(await driver.read(0, 2048)).toEqual(written);
      expect(written.some((b) => b !== 0)).toBe(true);
      expect(await driver.apply({ kind: 'write', offset: 8000, length: 1000, pattern: 1 })).toMatchObject({ ok: false, error: 'out-of-range' });
    } finally {
      await driver.close();
    }
  });

  it('both programs create at a fixed seed, and the property holds', async () => {
    const creators = new Set<string>();
    const result = await runProperty({
      property: 'handoff',
      // a seed whose six sequences hand the file over (the generators draw from it: re-pick when they change)
      seed: 20261127,
      numRuns: 6,
      sequence: { commandsCountMax: 25, swarm: { alwaysOn: ['write', 'reopen'] } },
      onSequence: (options) => creators.add(imageCreator(options)),
    });
    expect(result.status, formatText(result)).toBe('passed');
    expect([...creators].sort()).toEqual(['qemu', 'ts']);
    expect(result.coverage.opsByKind.reopen ?? 0).toBeGreaterThan(0);
  });
});

describe('handoff of backing chains', () => {
  // creator ts (QEMU holds the file first) and creator qemu (our engine does)
  const byTs: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 };
  const byQemu: ImageOptions = { ...byTs, virtualSize: 65536 + 512 };
  for (const options of [byTs, byQemu]) {
    it(`every chain op by one program, the chain opened by the other (first holder ${imageCreator(options) === 'ts' ? 'qemu' : 'ts'})`, async () => {
      const ops: Step[] = [
        { kind: 'write', offset: 0, length: options.virtualSize, pattern: 0, seed: 7 },
        { kind: 'createOverlay', backingFormat: 'raw', options: { ...byTs, clusterBits: 9, virtualSize: 98304 } },
        { kind: 'write', offset: 0x2100, length: 0x100, pattern: 0x22 },
        { kind: 'reopen' },
        { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...byTs, version: 2 } },
        { kind: 'write', offset: 0x3000, length: 0x1200, pattern: 0x33 },
        { kind: 'writeZeroes', offset: 0x6000, length: 0x1000, unmap: false },
        { kind: 'reopen' },
        { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...byTs, virtualSize: 49152 } },
        { kind: 'write', offset: 0x1000, length: 0x1000, pattern: 0x44 },
        { kind: 'read', offset: 0, length: 0xc000 },
        { kind: 'reopen' },
        { kind: 'commit' },
        { kind: 'reopen' },
        { kind: 'rebase', depth: 2, unsafe: false },
        { kind: 'reopen' },
        { kind: 'write', offset: 0x8000, length: 0x800, pattern: 0x55 },
        { kind: 'rebase', depth: 0, unsafe: true },
        { kind: 'reopen' },
        { kind: 'read', offset: 0, length: 0xc000 },
      ];
      const result = await replayOps({ impl: 'ts', options, ops, properties: ['handoff'] });
      expect(result.status, formatText(result)).toBe('passed');
      expect(Object.keys(result.coverage.chains)).toEqual(expect.arrayContaining(['commit', 'rebase:safe', 'rebase:unsafe', 'overlay:raw', 'overlay:qcow2']));
    });
  }

  it('draws chains at a fixed seed, and the property holds', async () => {
    const result = await runProperty({ property: 'handoff', seed: 20261130, numRuns: 6, sequence: { commandsCountMax: 25 } });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.opsByKind.createOverlay ?? 0).toBeGreaterThan(0);
  });
});

describe('known QEMU 7.2 divergences while QEMU holds the file', () => {
  // Creator ts for both option sets (asserted), so QEMU holds the file first.
  const overflow: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 1, lazyRefcounts: false, virtualSize: 1048576 };
  const stale: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 131072 };
  const cases: { name: string; options: ImageOptions; ops: Step[] }[] = [
    {
      name: 'a snapshot refused for refcount overflow leaks no cluster',
      options: overflow,
      ops: [
        { kind: 'write', offset: 0, length: 4096, pattern: 1 },
        { kind: 'snapshotCreate', name: 's1' },
      ],
    },
    {
      name: 'shrink then grow of a partial last cluster reads zeros',
      options: stale,
      ops: [
        { kind: 'write', offset: 0, length: 131072, pattern: 171 },
        { kind: 'resize', size: 66048 },
        { kind: 'resize', size: 131072 },
        { kind: 'read', offset: 66048, length: 512 },
      ],
    },
    {
      name: 'our engine shrinks, QEMU grows: zeros too',
      options: stale,
      ops: [
        { kind: 'write', offset: 0, length: 131072, pattern: 171 },
        { kind: 'reopen' },
        { kind: 'resize', size: 66048 },
        { kind: 'reopen' },
        { kind: 'resize', size: 131072 },
        { kind: 'read', offset: 66048, length: 512 },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      expect(imageCreator(c.options)).toBe('ts');
      const result = await replayOps({ impl: 'ts', options: c.options, ops: c.ops, properties: ['handoff'] });
      expect(result.status, formatText(result)).toBe('passed');
    });
  }
});
