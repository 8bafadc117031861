// map() and info() agree with qemu-img map / info on the same image.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Qcow2Image } from '../../impl/index.js';
import { qemuImg, qemuIo, withTempDir } from './qemu-helpers.js';

describe('map and info', () => {
  it('match qemu-img on an image with every cluster kind', async () => {
    await withTempDir(async (d) => {
      const path = join(d, 'm.qcow2');
      await qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', path, `${1024 * 1024 + 1536}`]);
      await qemuIo(path, ['write -P 1 0 12k', 'write -z 4k 4k', 'write -z -u 8k 4k', 'write -z 64k 8k', 'write -P 2 1M 1536']);
      await qemuImg(['snapshot', '-c', 'snap', path]);
      const image = await Qcow2Image.openFile(path, { readOnly: true });
      const expected = JSON.parse(await qemuImg(['map', '--output=json', path])) as unknown;
      expect(await image.map()).toEqual(expected);
      const info = await image.info();
      const qemu = JSON.parse(await qemuImg(['info', '--output=json', path])) as Record<string, unknown>;
      expect(info.virtualSize).toBe(qemu['virtual-size']);
      expect(info.clusterSize).toBe(qemu['cluster-size']);
      expect(info.snapshots.map((s) => s.name)).toEqual(['snap']);
      expect(info.snapshots[0]?.diskSize).toBe(1024 * 1024 + 1536);
      expect(info).toMatchObject({ version: 3, refcountBits: 16, lazyRefcounts: false, dirty: false, corrupt: false });
      await image.close();
    });
  });
});
