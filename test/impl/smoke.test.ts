import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Qcow2Image } from '../../impl/index.js';
import { firstDifference, pseudoRandomBytes, qemuCheck, qemuRaw, withTempDir } from './qemu-helpers.js';

describe('smoke', () => {
  it('engine image passes qemu-img check and reads back', async () => {
    await withTempDir(async (d) => {
      const path = join(d, 'a.qcow2');
      const img = await Qcow2Image.createFile(path, { size: 4 << 20, clusterSize: 4096 });
      const expected = new Uint8Array(4 << 20);
      const a = pseudoRandomBytes(10000, 1);
      await img.write(1000, a);
      expected.set(a, 1000);
      const b = pseudoRandomBytes(70000, 2);
      await img.write(3 << 20, b);
      expected.set(b, 3 << 20);
      expect(firstDifference(await img.read(0, 4 << 20), expected)).toBe(-1);
      await img.close();
      const check = await qemuCheck(path);
      expect(check).toMatchObject({ exitCode: 0, corruptions: 0, leaks: 0 });
      expect(firstDifference(await qemuRaw(path), expected)).toBe(-1);
    });
  });
});
