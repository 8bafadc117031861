// The structure, engine-outputs and space checks on backing chains: every layer
// file is judged (qcow2 layers against the model's state of that layer, raw
// ones byte for byte, header names against the chain), on chains built by our
// engine and by QEMU; and each check fails when a layer is not what the model
// says.
import { describe, expect, it } from 'vitest';
import { bufferReader, checkImage, decodeImage, initialState, step, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import type { CheckEnv } from '../../properties/checks/check.js';
import { engineOutputsCheck } from '../../properties/checks/engine-outputs.js';
import { spaceCheck, spaceExcessMax } from '../../properties/checks/space.js';
import { structureCheck } from '../../properties/checks/structure.js';
import type { ImageDriver } from '../../properties/driver.js';
import { createEngineDriver } from '../../properties/drivers/engine.js';
import { formatText, PropertyViolation, replayOps, type Step } from '../../properties/index.js';

const v3: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 };

/** A raw base, a qcow2 middle layer and a top, with COW, zeroes, a commit into the middle layer and a safe rebase. */
const chain: Step[] = [
  { kind: 'write', offset: 0, length: 0x10000, pattern: 0, seed: 3 },
  { kind: 'createOverlay', backingFormat: 'raw', options: { ...v3, clusterBits: 9, virtualSize: 98304 } },
  { kind: 'write', offset: 0x2100, length: 0x100, pattern: 0x22 },
  { kind: 'writeZeroes', offset: 0x4000, length: 0x1000, unmap: false },
  { kind: 'createOverlay', backingFormat: 'qcow2', options: { ...v3, virtualSize: 131072 } },
  { kind: 'write', offset: 0x3000, length: 0x1000, pattern: 0x33 },
  { kind: 'write', offset: 0x18000, length: 0x3000, pattern: 0x34 },
  { kind: 'snapshotCreate', name: 's' },
  { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 },
  { kind: 'write', offset: 0x1000, length: 0x2000, pattern: 0x44 },
  { kind: 'commit' },
  { kind: 'write', offset: 0x8000, length: 0x1000, pattern: 0x55 },
  { kind: 'rebase', depth: 2, unsafe: false },
];

describe('structure and space on chains', () => {
  for (const impl of ['ts', 'qemu'] as const) {
    it(`hold on a 3-deep chain over a raw base with commit and rebase, built by ${impl}`, async () => {
      const properties = impl === 'ts' ? (['structure', 'space'] as const) : (['structure', 'space', 'qemuJudges'] as const);
      const result = await replayOps({ impl, options: v3, ops: chain, properties: [...properties] });
      expect(result.status, formatText(result)).toBe('passed');
      expect(result.coverage.chains).toMatchObject({ commit: 1, 'rebase:safe': 1, 'sequences-at-depth:3': 1 });
    });
  }
});

/**
 * Runs `driverOps` on our engine and `modelOps` on the model (from
 * `modelOptions`), then one check after the last op as the runner does, on the
 * driver as `wrap` shows it; returns the check's scratch, or what it threw.
 */
async function judge(
  check: 'structure' | 'engine-outputs' | 'space',
  driverOps: readonly Op[],
  modelOps: readonly Op[],
  { wrap = (d: ImageDriver) => d, modelOptions = v3 }: { wrap?: (d: ImageDriver) => ImageDriver; modelOptions?: ImageOptions } = {},
): Promise<unknown> {
  const inner = await createEngineDriver(v3);
  const scratch = new Map<string, unknown>();
  try {
    for (const op of driverOps) expect((await inner.apply(op)).ok).toBe(true);
    const state = modelOps.reduce<ModelState>((s, op) => step(s, op).state, initialState(modelOptions));
    const driver = wrap(inner);
    const image = async () => {
      const bytes = await driver.imageBytes();
      return { bytes, decoded: () => decodeImage(bufferReader(bytes)), report: () => checkImage(bufferReader(bytes)) };
    };
    const env: CheckEnv = { driver, options: v3, state, scratch, image };
    const c = check === 'structure' ? structureCheck : check === 'engine-outputs' ? engineOutputsCheck : spaceCheck;
    await c.afterOp?.(env, driverOps.at(-1)!, { ok: true });
    return scratch;
  } catch (error) {
    return error;
  } finally {
    await inner.close();
  }
}

describe('a layer that is not what the model says fails', () => {
  const write = (pattern: number): Op => ({ kind: 'write', offset: 0, length: 0x1000, pattern });
  const overlay: Op = { kind: 'createOverlay', backingFormat: 'qcow2', options: v3 };

  it('structure: a backing file with other data, named after the layer', async () => {
    const error = await judge('structure', [write(1), overlay], [write(2), overlay]);
    expect(error).toBeInstanceOf(PropertyViolation);
    expect((error as PropertyViolation).check).toBe('structure');
    expect((error as Error).message).toMatch(/the backing file layer-1\.qcow2: .*byte 0 of the cluster = 0x2/);
  });

  it('structure: a raw backing file with other bytes, and a chain of another format', async () => {
    const raw: Op = { ...overlay, backingFormat: 'raw' };
    expect(((await judge('structure', [write(1), raw], [write(2), raw])) as Error).message).toMatch(/the backing file layer-1\.raw \(raw, 65536 bytes\) differs from the model's 65536 bytes at byte 0/);
    expect(((await judge('structure', [write(1), raw], [write(1), overlay])) as Error).message).toMatch(
      /the implementation's backing chain is \[layer-1\.raw \(raw\)\], the model's \[qcow2\]/,
    );
  });

  it('engine-outputs: the check report and info --backing-chain of each layer', async () => {
    // the model's base has one more allocated cluster than the file
    const error = await judge('engine-outputs', [write(1), overlay], [write(1), { kind: 'write', offset: 0x8000, length: 0x1000, pattern: 1 }, overlay]);
    expect((error as PropertyViolation).check).toBe('engine-check');
    expect((error as Error).message).toMatch(/qcow2-verify check on the backing file layer-1\.qcow2: allocated-clusters is 1, the model expects 2/);
    // the model's base has lazy refcounts, the file's not: only info shows it
    const info = await judge('engine-outputs', [write(1), overlay], [write(1), overlay], { modelOptions: { ...v3, lazyRefcounts: true } });
    expect((info as PropertyViolation).check).toBe('engine-info');
    expect((info as Error).message).toMatch(/info --backing-chain on the backing file layer-1\.qcow2: lazy refcounts is false, the model expects true/);
  });

  it('space: a backing file that grew past its live clusters after a commit', async () => {
    const ops: Op[] = [write(1), overlay, { kind: 'write', offset: 0x4000, length: 0x4000, pattern: 3 }, { kind: 'commit' }];
    const scratch = await judge('space', ops, ops);
    expect(scratch).toBeInstanceOf(Map);
    expect(spaceExcessMax(scratch as Map<string, unknown>, 'layer-1.qcow2')).toBeLessThanOrEqual(0);
    // the same commit, with the backing file padded by 64 clusters
    const padded = await judge('space', ops, ops, {
      wrap: (d) =>
        Object.create(d, {
          backingFileBytes: { value: async () => (await d.backingFileBytes!()).map((b) => new Uint8Array(b.length + 64 * 4096)) },
        }) as ImageDriver,
    });
    expect((padded as PropertyViolation).check).toBe('space');
    expect((padded as Error).message).toMatch(/after commit: the backing file layer-1\.qcow2 has \d+ clusters/);
  });
});
