// Faults on a backing chain (crashConsistency draws chains): a crash inside a
// write on an overlay, whose partial cluster is copied from the backing file,
// and an I/O error there, replay green on our engine and on QEMU; the backing
// files are judged unchanged and the coverage counts the faults on overlays.
// A planted fault-driver bug (after a crash the overlay loses a cluster that
// was durable, so the guest reads the backing file's bytes there) fails.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FaultFile } from '../../../impl/index.js';
import { bufferReader, decodeImage, type ImageOptions } from '../../../model/index.js';
import { formatText, replayOps, type Step } from '../../../properties/index.js';
import type { ImageDriver } from '../../../properties/driver.js';
import { backingBeforeFault, judgeBackingAfterFault } from '../../../properties/faults/run-fault.js';

/** 4 KiB clusters: a 512-byte write on the overlay copies the rest of its cluster from the backing file. */
const options: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 256 * 1024 };

const base: Step[] = [
  { kind: 'write', offset: 0, length: 0x8000, pattern: 0xab },
  { kind: 'createOverlay', backingFormat: 'qcow2', options },
  // durable on the overlay: a flush after it
  { kind: 'write', offset: 0x1000, length: 0x1000, pattern: 0x5c },
  { kind: 'flush' },
];

/** A crash inside a partial write on the overlay (COW from the backing file), a crash between ops, an I/O error on the overlay. */
const chainFaults: Step[] = [
  ...base,
  { kind: 'crash', seed: 5, during: { op: { kind: 'write', offset: 0x2200, length: 0x200, pattern: 0xcd }, access: 'write', nth: 1 } },
  { kind: 'write', offset: 0x3400, length: 0x400, pattern: 0xee },
  { kind: 'crash', seed: 11 },
  { kind: 'ioError', op: { kind: 'write', offset: 0x4200, length: 0x200, pattern: 0x17 }, access: 'write', nth: 1, errno: 'EIO', persistent: false },
];

/** A harness hang guard only: a replay takes a few seconds. */
const replayTimeoutMs = 5 * 60 * 1000;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('crashConsistency on backing chains', () => {
  it('our engine: crashes inside and between ops on an overlay and an I/O error there hold, counted as faults on an overlay', async () => {
    const result = await replayOps({ impl: 'ts', options, ops: chainFaults, properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.faults).toMatchObject({ 'crash:overlay': 2, 'ioError:overlay': 1, 'crash@inside write': 1 });
    expect(result.coverage.chains).toMatchObject({ 'crash:overlay depth-1': 2, 'ioError:overlay depth-1': 1 });
  }, replayTimeoutMs);

  it('QEMU: a kill inside a write on an overlay (blkdebug break point), a kill between ops and a blkdebug error there hold', async () => {
    const qemuSteps: Step[] = [
      ...base,
      // cow_read: the read of the backing file's bytes for the partial cluster
      { kind: 'crash', seed: 5, during: { op: { kind: 'write', offset: 0x2200, length: 0x200, pattern: 0xcd }, access: 'write', nth: 1, event: 'cow_read' } },
      { kind: 'write', offset: 0x3400, length: 0x400, pattern: 0xee },
      { kind: 'crash', seed: 11 },
      { kind: 'ioError', op: { kind: 'write', offset: 0x4200, length: 0x200, pattern: 0x17 }, access: 'write', nth: 1, errno: 'EIO', persistent: false, event: 'cow_write' },
    ];
    const result = await replayOps({ impl: 'qemu', options, ops: qemuSteps, properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.faults).toMatchObject({ 'crash:overlay': 2, 'crash:blkdebug break cow_read': 1, 'ioError:overlay': 1 });
  }, replayTimeoutMs);

  it('a fault driver whose crash state loses a durable overlay cluster (the guest reads the backing file there) fails the crash judge', async () => {
    const crashState = FaultFile.prototype.crashState;
    vi.spyOn(FaultFile.prototype, 'crashState').mockImplementation(async function (this: FaultFile, seed: number) {
      return unallocateFirstCluster(await crashState.call(this, seed));
    });
    const result = await replayOps({ impl: 'ts', options, ops: [...base, { kind: 'crash', seed: 3 }], properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    expect(result.failure).toMatchObject({ kind: 'violation', check: 'crash', message: expect.stringMatching(/guest sector at 0x1000 reads bytes that no state since the last flush holds/) });
  }, replayTimeoutMs);
});

describe('judgeBackingAfterFault', () => {
  /** A driver whose one raw backing file reads `bytes[i]` at the ith look. */
  function driverSeeing(...bytes: Uint8Array[]): ImageDriver {
    let looks = 0;
    const chain = [{ name: 'layer-1.raw', format: 'raw' as const }];
    return { backingChain: () => chain, backingFileBytes: () => Promise.resolve([bytes[Math.min(looks++, bytes.length - 1)] ?? new Uint8Array()]) } as unknown as ImageDriver;
  }

  it('a backing file a fault left byte for byte as it was passes; one it changed is a violation naming it', async () => {
    const same = driverSeeing(new Uint8Array([1, 2]), new Uint8Array([1, 2]));
    await judgeBackingAfterFault(same, await backingBeforeFault(same), 'crash', 'crash <seed 1>');
    const changed = driverSeeing(new Uint8Array([1, 2]), new Uint8Array([1, 3]));
    await expect(judgeBackingAfterFault(changed, await backingBeforeFault(changed), 'io-error', 'ioError')).rejects.toMatchObject({
      check: 'io-error',
      message: expect.stringContaining('the backing file layer-1.raw changed under a fault'),
    });
  });
});

/** The mutant: in an overlay (an image with a backing file), the first allocated L2 entry of the active table cleared, as if its cluster were never written. */
function unallocateFirstCluster(bytes: Uint8Array): Uint8Array {
  const decoded = decodeImage(bufferReader(bytes));
  if (decoded.header.backingFile === undefined) return bytes;
  for (const offset of decoded.active.l2Offsets) {
    const index = offset === 0 ? -1 : (decoded.l2Tables.get(offset) ?? []).findIndex((e) => e.kind === 'normal');
    if (index < 0) continue;
    const out = bytes.slice();
    out.fill(0, offset + index * 8, offset + index * 8 + 8);
    return out;
  }
  return bytes;
}
