// Extended L2 entries in the model's decoder and checker, on images QEMU wrote:
// the same qemu-img check JSON members on clean images of several cluster
// sizes, the decoded subcluster bitmaps, and the decoder's strict refusals.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { bufferReader, checkImage, checkReportJson, decodeImage, DecodeError } from '../../model/index.js';
import { imageBytes, join, qemuCheckJson, withTempDir } from './qemu.js';

/** Partial, unaligned, zeroed and compressed subcluster writes, a snapshot and a copy-on-write. */
async function qemuExtendedImage(file: string, clusterSize: number): Promise<void> {
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `extended_l2=on,cluster_size=${clusterSize}`, file, String(16 * clusterSize)]);
  const sc = clusterSize / 32;
  const io = (...cmds: string[]) => execa('qemu-io', ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), file]);
  await io(`write -P 0x11 0 ${2 * sc}`, `write -P 0x22 ${clusterSize + 3 * sc + 100} ${sc}`, `write -z ${2 * clusterSize + sc} ${3 * sc}`, `write -c -P 0x33 ${4 * clusterSize} ${clusterSize}`);
  await io(`write -z -u ${6 * clusterSize} ${clusterSize}`, `write -P 0x55 ${7 * clusterSize} ${clusterSize}`);
  await execa('qemu-img', ['snapshot', '-c', 's1', file]);
  await io(`write -P 0x44 ${5 * sc} ${sc}`);
}

describe('checkImage on clean extended-L2 images made by QEMU', () => {
  it.each([16384, 65536, 2097152])('cluster size %i: same JSON members as qemu-img check, no messages', async (clusterSize) => {
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuExtendedImage(file, clusterSize);
      const qemu = await qemuCheckJson(file);
      const ours = checkImage(bufferReader(await imageBytes(file)));
      expect(ours.messages).toEqual([]);
      expect(qemu.exitCode).toBe(0);
      expect(checkReportJson(ours, 'img.qcow2')).toEqual({ ...qemu.json, filename: 'img.qcow2' });
    });
  });
});

describe('decodeImage on extended-L2 images', () => {
  it('reads 16-byte entries: cs / 16 per table, with their subcluster bitmaps', async () => {
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await qemuExtendedImage(file, 16384);
      const decoded = decodeImage(bufferReader(await imageBytes(file)));
      expect(decoded.header.extendedL2).toBe(true);
      const table = decoded.l2Tables.get(decoded.active.l2Offsets[0]!)!;
      expect(table).toHaveLength(1024);
      // Cluster 0: subclusters 0-1 written; the copy-on-write of subcluster 5 after
      // the snapshot copies from the start of the cluster, so 0-5 are allocated.
      expect(table[0]).toMatchObject({ kind: 'normal', copied: true, subclusters: { alloc: 0b111111, zero: 0 } });
      // Cluster 1: an unaligned write of one subcluster's length touches subclusters 3 and 4.
      expect(table[1]).toMatchObject({ kind: 'normal', subclusters: { alloc: 0b11000, zero: 0 } });
      // Cluster 2: zeroed subclusters 1-3 of an unallocated cluster.
      expect(table[2]).toEqual({ kind: 'unallocated', copied: false, subclusters: { alloc: 0, zero: 0b1110 } });
      expect(table[4]).toMatchObject({ kind: 'compressed', copied: false });
      expect(table[4]!.subclusters).toBeUndefined();
      expect(table[7]).toMatchObject({ kind: 'normal', copied: false, subclusters: { alloc: 0xffffffff, zero: 0 } });
    });
  });

  it.each([
    ['a subcluster both allocated and zero', 8, 1n | (1n << 32n), /L2 entry 0 subcluster bitmap at byte \d+: 0x100000001 \(no subcluster both allocated and zero\)/],
    ['allocation bits in an unallocated cluster', 16 + 8, 1n, /L2 entry 1 subcluster bitmap .*no allocated subcluster in an unallocated cluster/],
    ['the zero flag (reserved with extended L2)', 0, undefined, /L2 entry 0 .*no zero flag with extended L2 entries/],
  ] as const)('refuses %s', async (_what, at, value, message) => {
    await withTempDir(async (d) => {
      const file = join(d, 'img.qcow2');
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=16k', file, '1M']);
      await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 1 0 512', file]);
      const bytes = await imageBytes(file);
      const view = new DataView(bytes.buffer);
      const l2 = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00fffffffffffe00n);
      if (value === undefined) view.setBigUint64(l2 + at, view.getBigUint64(l2 + at) | 1n);
      else view.setBigUint64(l2 + at, view.getBigUint64(l2 + at) | value);
      expect(() => decodeImage(bufferReader(bytes))).toThrow(DecodeError);
      expect(() => decodeImage(bufferReader(bytes))).toThrow(message);
    });
  });
});
