// The engine on extended-L2 overlays of a backing file, against QEMU 7.2: the
// same qemu-io script on a qemu-img overlay and on our own `create -b`, both over
// one base, then the two compared (entries and bitmaps, qemu-img map with depth,
// file length, guest content), and our `map` of our overlay against qemu-img's.
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli/run-cli.js';
import { inTempDir, qemuImg, qemuImgJson, qemuIo } from '../cli/qemu.js';
import { expectSameImage, runBoth, type Step } from './extended-l2-helpers.js';

/** Scripts for 16 KiB clusters (512-byte subclusters) over a 1 MiB base. */
const scripts: Readonly<Record<string, readonly Step[]>> = {
  // Unallocated subclusters read the base; a partial one is copied from it.
  'partial subcluster writes copy the rest from the backing file': ['write -P 0x11 100 200', 'write -P 0x12 20k 600', 'write -P 0x13 40000 40000', 'read -P 0xaa 0 100'],
  // A partial piece is zeroized only where the rest of its subcluster reads zeros through the chain.
  'write-zeroes hides the backing file per subcluster': [
    'write -z 512 512', 'write -z 16k 16k', 'write -z -u 32k 16k', 'write -z 50000 100', 'write -z 600k 1000', 'write -z 900k 300',
  ],
  'discard of whole clusters hides the backing file; partial clusters are ignored': [
    'write -z 512 512', 'write -P 1 32768 1k', 'discard 0 16k', 'discard 16k 16k', 'discard 32k 16k', 'discard 64k 1k', 'discard 100k 40k',
  ],
  'snapshot then copy-on-write of a cluster with unallocated subclusters': [
    'write -P 0x21 10k 2k', 'write -P 0x22 40k 1k', { snapshot: 's1' }, 'write -P 0x23 20k 100', 'write -z 41k 512', { revert: 's1' }, 'write -P 0x24 44k 1k',
  ],
  // The growth past the base's end is zeroed from the next subcluster boundary.
  'shrink inside a cluster, then grow over the backing file': ['write -P 0x31 512k 1k', 'truncate 525312', 'truncate 1M', 'write -P 0x32 700k 1k'],
};

async function makeBase(dir: string, size = '1M'): Promise<string> {
  const base = `${dir}/base.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', base, size)).exitCode).toBe(0);
  // 0xaa everywhere but a zero cluster and an unallocated range, so the rest of a subcluster may read zeros
  expect((await qemuIo(base, 'write -P 0xaa 0 1M', 'write -z 592k 16k', 'discard 896k 32k')).exitCode).toBe(0);
  return base;
}

describe('engine on extended-L2 overlays, as QEMU 7.2 writes them', () => {
  it.each(Object.entries(scripts))('%s', async (_name, steps) => {
    await inTempDir(async (dir) => {
      const base = await makeBase(dir);
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=16k', '1M', steps, false, ['-b', base, '-F', 'qcow2']);
      await expectSameImage(ours, qemu);
      const map = await runCli(['map', '--output=json', ours]);
      expect(map.exitCode).toBe(0);
      expect(JSON.parse(map.stdout)).toEqual(await qemuImgJson('map', ours));
    });
  });

  it('an overlay larger than its base reads zeros past the base, and maps them at depth 0', async () => {
    await inTempDir(async (dir) => {
      const base = await makeBase(dir);
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=16k', '2M', ['write -P 1 1049600 512', 'write -P 2 16896 512', 'write -z 1040k 16k'], false, ['-b', base, '-F', 'qcow2']);
      await expectSameImage(ours, qemu);
      const map = await runCli(['map', '--output=json', ours]);
      expect(JSON.parse(map.stdout)).toEqual(await qemuImgJson('map', ours));
    });
  });

  it('an extended-L2 image as the backing file of a standard overlay: reads and map at depth 1, per subcluster', async () => {
    await inTempDir(async (dir) => {
      const base = `${dir}/sc.qcow2`;
      expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=16k', base, '1M')).exitCode).toBe(0);
      expect((await qemuIo(base, 'write -P 0x41 1000 3000', 'write -z 20k 1k', 'write -P 0x42 33k 512')).exitCode).toBe(0);
      const { ours, qemu } = await runBoth(dir, 'cluster_size=4k', '1M', ['write -P 0x43 5k 100', 'write -z 21k 100'], false, ['-b', base, '-F', 'qcow2']);
      await expectSameImage(ours, qemu);
      const map = await runCli(['map', '--output=json', ours]);
      expect(JSON.parse(map.stdout)).toEqual(await qemuImgJson('map', ours));
    });
  });

  it('growing over the backing file fails, as in QEMU, when the disk ended inside a compressed cluster', async () => {
    await inTempDir(async (dir) => {
      const base = await makeBase(dir);
      const steps = ['write -c -P 3 512k 64k', 'truncate 525312'];
      const { ours, qemu } = await runBoth(dir, 'extended_l2=on,cluster_size=64k', '1M', steps, false, ['-b', base, '-F', 'qcow2']);
      expect((await qemuIo(qemu, 'truncate 1M')).stdout).toContain('Failed to zero out new clusters: Operation not supported');
      const r = await runCli(['io', ours, '-c', 'truncate 1M']);
      expect(r.stdout + r.stderr).toMatch(/failed to zero out new clusters/);
      await expectSameImage(ours, qemu);
    });
  });
});
