// QEMU through the same driver interface: its outcomes and reads must match the
// model too (docs/semantics.md was checked against qemu-io 7.2).
import { describe, expect, it } from 'vitest';
import { writeBytes, type WriteOp } from '../../model/index.js';
import { driverFactories, formatText, replayOps, runProperty } from '../../properties/index.js';
import { hexdumpReadBytesMax } from '../../properties/drivers/qemu.js';
import { firstDifference } from '../../properties/steps.js';

describe('qemu driver', () => {
  it('agrees with the model on outcomes and reads for a few sequences', async () => {
    const result = await runProperty({
      property: 'readsAndOutcomes',
      impl: 'qemu',
      numRuns: 4,
      sequence: { commandsCountMax: 12, image: { clusterBitsMax: 16 } },
    });
    expect(result.status, formatText(result)).toBe('passed');
  });

  it('maps QEMU refusals to the model error kinds', async () => {
    const result = await replayOps({
      impl: 'qemu',
      options: { version: 2, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 4096 },
      properties: ['readsAndOutcomes'],
      ops: [
        { kind: 'write', offset: 4000, length: 200, pattern: 1 },
        { kind: 'resize', size: 1000 },
        { kind: 'snapshotCreate', name: 'base' },
        { kind: 'resize', size: 8192 },
        { kind: 'snapshotRevert', name: 'missing' },
        { kind: 'snapshotDelete', name: 'missing' },
        { kind: 'write', offset: 0, length: 600, pattern: 0, seed: 7 },
        { kind: 'read', offset: 0, length: 4096 },
      ],
    });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.outcomes).toEqual({ ok: 2, 'out-of-range': 1, 'invalid-argument': 1, unsupported: 1, 'unknown-snapshot': 2 });
  });

  it('reads long ranges exactly through qemu-img convert and short ones through qemu-io', async () => {
    const virtualSize = 4 * hexdumpReadBytesMax;
    const driver = await driverFactories.qemu({ version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: true, virtualSize });
    try {
      // seeded (not constant) bytes across cluster boundaries, and a zeroed range;
      // never flushed, so their L2 entries are only in the session's cache until the long read flushes it
      const op: WriteOp = { kind: 'write', offset: 1000, length: 2 * hexdumpReadBytesMax, pattern: 0, seed: 11 };
      expect(await driver.apply(op)).toEqual({ ok: true });
      expect(await driver.apply({ kind: 'writeZeroes', offset: 5000, length: 3000, unmap: true })).toEqual({ ok: true });
      const expected = new Uint8Array(virtualSize);
      expected.set(writeBytes(op), op.offset);
      expected.fill(0, 5000, 8000);
      // the first differing byte, not a diff of 256 KiB (vitest takes minutes to print one)
      expect(firstDifference(await driver.read(0, virtualSize), expected)).toBe(-1);
      const middle = hexdumpReadBytesMax + 1;
      expect(firstDifference(await driver.read(middle, hexdumpReadBytesMax), expected.subarray(middle, middle + hexdumpReadBytesMax))).toBe(-1);
      expect(firstDifference(await driver.read(900, hexdumpReadBytesMax), expected.subarray(900, 900 + hexdumpReadBytesMax))).toBe(-1);
    } finally {
      await driver.close();
    }
  });
});
