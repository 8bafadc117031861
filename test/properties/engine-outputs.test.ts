// The engine's own outputs (what `qcow2-verify map`, `info` and `check` print)
// are judged against the model: they agree on an engine image with snapshots
// and zero clusters, and each judge names the field when one is wrong.
import { describe, expect, it } from 'vitest';
import { bufferReader, checkImage, initialState, step, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import {
  checkReportDisagreement,
  engineMapDisagreement,
  engineOutputsCheck,
  infoDisagreement,
} from '../../properties/checks/engine-outputs.js';
import { createEngineDriver } from '../../properties/drivers/engine.js';
import type { EngineReports } from '../../properties/driver.js';
import { PropertyViolation } from '../../properties/index.js';

const options: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 64 * 1024 };
const ops: Op[] = [
  { kind: 'write', offset: 0, length: 1536, pattern: 0x11 },
  { kind: 'snapshotCreate', name: '2' },
  { kind: 'writeZeroes', offset: 512, length: 512, unmap: false },
  { kind: 'write', offset: 4096, length: 512, pattern: 0x22 },
  { kind: 'snapshotCreate', name: '' },
  // past one L1 cluster's reach (64 entries × 32 KiB): the L1 table takes a second cluster
  { kind: 'resize', size: 2 * 1024 * 1024 + 512 },
  { kind: 'write', offset: 2 * 1024 * 1024, length: 512, pattern: 0x33 },
  { kind: 'snapshotDelete', name: '2' },
];

async function engineAfter(): Promise<{ state: ModelState; bytes: Uint8Array; reports: EngineReports }> {
  const driver = await createEngineDriver(options);
  let state = initialState(options);
  for (const op of ops) {
    expect(await driver.apply(op)).toEqual({ ok: true });
    state = step(state, op).state;
  }
  const bytes = await driver.imageBytes();
  const reports = await driver.reports();
  await driver.close();
  return { state, bytes, reports };
}

describe('engine outputs judged against the model', () => {
  it('agree on an engine image (snapshots named "2" and "", zero-alloc, L1 over two clusters)', async () => {
    const { state, bytes, reports } = await engineAfter();
    expect(checkReportDisagreement(checkImage(bufferReader(bytes)), state, bytes.length)).toBeUndefined();
    expect(engineMapDisagreement(reports.map, state, bytes.length)).toBeUndefined();
    expect(infoDisagreement(reports.info, state, bytes.length)).toBeUndefined();
    expect(reports.info.snapshots.map((s) => `${s.id}:${s.name}`)).toEqual(['2:']);
  });

  it('name the wrong field of check, map and info', async () => {
    const { state, bytes, reports } = await engineAfter();
    const report = checkImage(bufferReader(bytes));
    expect(checkReportDisagreement({ ...report, allocatedClusters: (report.allocatedClusters ?? 0) + 1 }, state, bytes.length)).toBe(
      'allocated-clusters is 6, the model expects 5',
    );
    expect(checkReportDisagreement({ ...report, leaks: 1 }, state, bytes.length)).toBe('leaks is 1, the model expects 0');
    expect(checkReportDisagreement({ ...report, imageEndOffset: bytes.length + 512 }, state, bytes.length)).toMatch(/^image-end-offset is \d+: not a cluster boundary/);

    const flipped = reports.map.map((e) => (e.start === 0 ? { ...e, data: false, zero: true } : e));
    expect(engineMapDisagreement(flipped, state, bytes.length)).toMatch(/^guest offset 0x0: qcow2-verify map says zero .* the model says data/);
    const short = reports.map.slice(0, -1);
    expect(engineMapDisagreement(short, state, bytes.length)).toMatch(/^qcow2-verify map ends at 0x/);
    const outside = reports.map.map((e) => (e.data ? { ...e, offset: bytes.length } : e));
    expect(engineMapDisagreement(outside, state, bytes.length)).toMatch(/maps to host offset \d+, not clusters inside the \d+-byte file/);

    const renamed = { ...reports.info, snapshots: reports.info.snapshots.map((s) => ({ ...s, name: 'x' })) };
    expect(infoDisagreement(renamed, state, bytes.length)).toBe("snapshot 0 is ID 2 name 'x' disk size 65536, the model expects ID 2 name '' disk size 65536");
    expect(infoDisagreement({ ...reports.info, virtualSize: 1 }, state, bytes.length)).toBe('virtual size is 1, the model expects 2097664');
  });

  it('as a check, throws a typed violation for a driver whose info disagrees', async () => {
    const driver = await createEngineDriver(options);
    const op: Op = { kind: 'snapshotCreate', name: 'a' };
    await driver.apply(op);
    const honest = await driver.reports();
    // the same driver, but its info lists no snapshot
    const lying = Object.assign(Object.create(driver) as typeof driver, {
      reports: () => Promise.resolve({ ...honest, info: { ...honest.info, snapshots: [] } }),
    });
    const state = step(initialState(options), op).state;
    const bytes = await driver.imageBytes();
    const sample = { bytes, decoded: () => { throw new Error('unused'); }, report: () => checkImage(bufferReader(bytes)) };
    const env = { driver: lying, options, state, scratch: new Map(), image: () => Promise.resolve(sample) };
    const error = await engineOutputsCheck.afterOp!(env, op, { ok: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PropertyViolation);
    expect((error as PropertyViolation).check).toBe('engine-info');
    expect((error as PropertyViolation).message).toBe('[engine-info] after snapshot -c a: qcow2-verify info: snapshot count is 0, the model expects 1');
    await driver.close();
  });
});
