// Snapshot refcount overflow decided by the packing of compressed streams, on
// images QEMU 7.2 made: two streams in one host cluster with 2-bit refcounts
// (refcount 2, one more walk adds 2: QEMU refuses `snapshot -c`), one stream
// alone (QEMU takes the snapshot). The model's own count allows both.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bufferReader, decodeImage, initialState, packedOverflowCluster, packingDecidesOverflow, step, type ImageOptions } from '../../model/index.js';
import { runProperty } from '../../properties/index.js';
import { withTempDir } from './qemu.js';

const options: ImageOptions = { version: 3, clusterBits: 12, refcountBits: 2, lazyRefcounts: false, virtualSize: 1 << 20 };

/** `qemu-io write -c` of `length` bytes at 0 on a fresh image; the image, and whether `qemu-img snapshot -c` then succeeds. */
async function qemuCase(length: number): Promise<{ image: Uint8Array; snapshotOk: boolean }> {
  return withTempDir(async (d) => {
    const file = join(d, 'p.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'refcount_bits=2,cluster_size=4096', file, '1M']);
    execFileSync('qemu-io', ['-c', `write -c -P 0x11 0 ${length}`, file]);
    const image = new Uint8Array(await readFile(file));
    let snapshotOk = true;
    try {
      execFileSync('qemu-img', ['snapshot', '-c', 's1', file], { stdio: 'pipe' });
    } catch {
      snapshotOk = false;
    }
    return { image, snapshotOk };
  });
}

describe('snapshot overflow decided by packing', () => {
  it('two streams in one host cluster: the model allows the snapshot, the packed image overflows, QEMU refuses', async () => {
    const { image, snapshotOk } = await qemuCase(8192);
    expect(snapshotOk).toBe(false);
    const state = step(initialState(options), { kind: 'writeCompressed', offset: 0, length: 8192, pattern: 0x11 }).state;
    expect(step(state, { kind: 'snapshotCreate', name: 's1' }).outcome.ok).toBe(true);
    expect(packingDecidesOverflow(state, { kind: 'snapshotCreate', name: 's1' })).toEqual({});
    const decoded = decodeImage(bufferReader(image));
    const [first, second] = decoded.l2Tables.values().next().value!;
    const host = Math.floor(first!.host! / 4096);
    expect(Math.floor(second!.host! / 4096)).toBe(host);
    expect(decoded.refcounts.refcount(host)).toBe(2n);
    expect(packedOverflowCluster(decoded, decoded.active)).toBe(host);
  });

  it('one stream alone: no overflow, and QEMU takes the snapshot', async () => {
    const { image, snapshotOk } = await qemuCase(4096);
    expect(snapshotOk).toBe(true);
    const decoded = decodeImage(bufferReader(image));
    expect(packedOverflowCluster(decoded, decoded.active)).toBeUndefined();
  });

  it('leaves ops without compressed streams, and other ops, to the model alone', () => {
    const state = step(initialState(options), { kind: 'write', offset: 0, length: 4096, pattern: 1 }).state;
    expect(packingDecidesOverflow(state, { kind: 'snapshotCreate', name: 's1' })).toBeUndefined();
    expect(packingDecidesOverflow(state, { kind: 'flush' })).toBeUndefined();
    expect(packingDecidesOverflow(state, { kind: 'snapshotRevert', name: 'missing' })).toBeUndefined();
  });

  it('the engine meets such refusals with 2-bit refcounts and every one is justified by its packing', async () => {
    const result = await runProperty({
      property: 'readsAndOutcomes',
      impl: 'ts',
      seed: 1,
      numRuns: 60,
      sequence: { image: { versions: [3], refcountBits: [2], clusterBitsMax: 12 }, swarm: { alwaysOn: ['writeCompressed', 'snapshotCreate'] }, commandsCountMax: 40 },
    });
    expect(result.status).toBe('passed');
    expect(result.coverage.outcomes['refcount-overflow:packed-streams'] ?? 0).toBeGreaterThan(0);
  });
});
