// The engine on extended-L2 images against QEMU 7.2: the same qemu-io script run
// by qemu-io on a qemu-img image and by our `io` on our own `create`, then the
// two images compared field by field: every L2 entry with its subcluster bitmap
// (model decoder), qemu-img map (offsets included), the file length, the guest
// content (qemu-img compare), qemu-img check on ours, and our reads of QEMU's image.
import { readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { inTempDir, qemuImg, qemuIo } from '../cli/qemu.js';
import { expectSameImage, runBoth, type Step } from './extended-l2-helpers.js';

/** A script, or one that depends on the cluster size in bytes. */
const scripts: Readonly<Record<string, readonly Step[] | ((clusterSize: number) => readonly Step[])>> = {
  'partial and unaligned subcluster writes': ['write -P 0x11 0 1k', 'write -P 0x22 20k 600', 'write -P 0x33 30k 40k', 'write -P 0x44 100k 3'],
  'writes into a cluster that is already private': [
    'write -P 0x11 0 1k', 'write -P 0x44 512 100', 'write -P 0x55 5k 1k', 'write -P 0x66 15k 2k', 'write -P 0x77 0 16k',
  ],
  'write-zeroes: whole, partial, unaligned, unmap': [
    'write -P 0x11 0 48k', 'write -z 40k 2k', 'write -z 41k 100', 'write -z 100 50', 'write -z 16k 16k',
    'write -z -u 96k 16k', 'write -z 8k 20k', 'write -z 200k 1000', 'write -P 0x22 300k 4k', 'write -z -u 300k 2k',
  ],
  // One cluster per compressed write: QEMU packs the streams of a longer one in the order its parallel tasks finish.
  'compressed clusters: copy-on-write and zeroes': (cs) => [
    `write -c -P 0x66 ${cs} ${cs}`, `write -P 0x77 ${cs + 6144} 1k`, `write -c -P 0x55 ${4 * cs} ${cs}`, `write -z ${4 * cs} 1k`,
    `write -c -P 0x44 ${6 * cs} ${cs}`, `write -z ${6 * cs} ${cs}`, `write -c -P 0x33 ${8 * cs} ${cs}`, `write -z -u ${8 * cs + 2048} 2k`,
    // A zeroing whose last cluster is compressed and partly covered: QEMU zeroes the
    // head and the whole clusters, fails on the tail, and the block layer writes it all as zeros.
    `write -c -P 0x22 ${12 * cs} ${cs}`, `write -P 0x11 ${10 * cs} 1k`, `write -z ${10 * cs + 8192} ${2 * cs}`,
    // The same with the compressed cluster first: nothing is zeroed before the fallback write.
    `write -c -P 0x21 ${14 * cs} ${cs}`, `write -z ${14 * cs + 4096} ${2 * cs}`,
  ],
  'discard whole and partial clusters': ['write -P 0x11 0 64k', 'write -z 80k 1k', 'discard 0 16k', 'discard 20k 512', 'discard 64k 32k'],
  'a snapshot, then copy-on-write of shared clusters': [
    'write -P 0x11 0 1k', 'write -P 0x22 10k 1k', 'write -P 0x33 16k 16k', { snapshot: 's1' },
    'write -P 0x44 4k 512', 'write -P 0x55 20k 100', 'write -z 40k 1k', 'write -z 18k 2k', 'discard 32k 16k',
  ],
  'write-zeroes and discard on clusters shared with a snapshot, then revert and delete': [
    'write -P 0x11 0 48k', 'write -P 0x22 64k 1k', { snapshot: 's1' }, 'write -z 16k 16k', 'write -z 2k 2k', 'write -z -u 32k 16k',
    'discard 64k 16k', { snapshot: 's2' }, 'write -P 0x33 1k 1k', { revert: 's1' }, 'write -P 0x44 66k 1k', { delete: 's1' },
    'write -P 0x55 3k 1k',
  ],
  // Cluster-aligned: a shrink inside a cluster leaves a stale tail that QEMU 7.2 shows again on growth (docs/semantics.md).
  'resize down and up': ['write -P 0x11 0 100k', 'truncate 64k', 'truncate 1M', 'write -P 0x22 500k 1k'],
  // Growing a disk that ended inside its last cluster: only allocated tail subclusters
  // could hold stale bytes; never-written and zero ones stay as QEMU leaves them.
  'grow after a shrink inside the last cluster': (cs) => [
    `truncate ${8 * cs - 2048}`, `write -P 0x11 ${7 * cs} ${cs - 2048}`, `truncate ${8 * cs}`,
    `truncate ${6 * cs - 1024}`, `write -P 0x22 ${5 * cs} ${cs - 1024}`, `truncate ${6 * cs}`,
    `write -P 0x33 ${3 * cs} ${cs - 4096}`, `write -z ${4 * cs - 4096} 4096`, `truncate ${4 * cs - 2048}`, `truncate ${5 * cs}`,
  ],
};

describe('engine on extended-L2 images, as QEMU 7.2 writes them', () => {
  it.each(Object.entries(scripts))('%s (16 KiB clusters)', async (_name, steps) => {
    await inTempDir(async (dir) => {
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=16k', '1M', typeof steps === 'function' ? steps(16384) : steps);
      await expectSameImage(ours, qemu);
    });
  });

  it.each(Object.entries(scripts))('%s (64 KiB clusters, 2 KiB subclusters)', async (_name, steps) => {
    await inTempDir(async (dir) => {
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on', '4M', typeof steps === 'function' ? steps(65536) : steps);
      await expectSameImage(ours, qemu);
    });
  });

  it('reads back what qemu-io wrote, subcluster by subcluster', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/q.qcow2`;
      expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=16k', file, '1M')).exitCode).toBe(0);
      expect((await qemuIo(file, 'write -P 0x11 0 1k', 'write -P 0x22 1500 100', 'write -z 2k 1k', 'write -c -P 0x33 16k 16k')).exitCode).toBe(0);
      const r = await runCli(['io', '-r', file, '-c', 'read -P 0x11 0 1k', '-c', 'read -P 0 1k 476', '-c', 'read -P 0x22 1500 100', '-c', 'read -P 0 1600 14784', '-c', 'read -P 0x33 16k 16k']);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
    });
  });
});

describe('engine on extended-L2 images: options and damage', () => {
  it('lazy refcounts: the same image as QEMU after writes', async () => {
    await inTempDir(async (dir) => {
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=16k,lazy_refcounts=on', '1M', ['write -P 1 0 1k', 'write -P 2 40k 20k', 'write -z 8k 8k']);
      await expectSameImage(ours, qemu);
    });
  });

  it.each([
    ['a subcluster both allocated and zero', 1n | (1n << 32n)],
    ['allocation bits in an unallocated cluster', 0xfn],
  ] as const)('%s: a read of that cluster fails as corrupt, as qemu-io reads fail with EIO', async (_what, bitmap) => {
    await inTempDir(async (dir) => {
      const file = `${dir}/d.qcow2`;
      expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=16k', file, '1M')).exitCode).toBe(0);
      expect((await qemuIo(file, 'write -P 1 16k 1k')).exitCode).toBe(0);
      const bytes = new Uint8Array(await readFile(file));
      const view = new DataView(bytes.buffer);
      const l2 = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00fffffffffffe00n);
      // Entry 1 (guest cluster 1) is allocated, entry 2 is not.
      const at = bitmap === 0xfn ? l2 + 2 * 16 + 8 : l2 + 16 + 8;
      view.setBigUint64(at, bitmap);
      await writeFile(file, bytes);
      const guest = bitmap === 0xfn ? '32k' : '16k';
      expect((await qemuIo(file, `read ${guest} 512`)).stdout).toContain('read failed: Input/output error');
      const r = await runCli(['io', '-r', file, '-c', `read ${guest} 512`, '-c', 'read -P 0 0 512']);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(/^read failed: L2 table at \d+ entry [12]: (subcluster both allocated and zero|unallocated cluster with allocated subclusters) \(subcluster bitmap 0x[0-9a-f]+\) \(corrupt\)\nread 512\/512 bytes at offset 0\n/);
    });
  });
});
