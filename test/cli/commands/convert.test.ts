import { stat, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandomBytes } from '../../impl/qemu-helpers.js';
import { runCli } from '../run-cli.js';
import { expectClean, inTempDir, qemuImg, qemuImgJson, qemuIo } from '../qemu.js';

describe('convert (end to end against qemu-img compare)', () => {
  it('qcow2 → raw: identical to the image, sparse where the image has no data', async () => {
    await inTempDir(async (dir) => {
      const image = `${dir}/a.qcow2`;
      const raw = `${dir}/a.raw`;
      await qemuImg('create', '-q', '-f', 'qcow2', image, '16M');
      await qemuIo(image, 'write -P 0x5a 0 1M', 'write -P 0x6b 15M 100k', 'write -z 512k 64k', 'write -P 0 4M 64k');
      const r = await runCli(['convert', '-O', 'raw', image, raw]);
      expect(r).toEqual({ stdout: '', stderr: '', exitCode: 0 });
      expect((await stat(raw)).size).toBe(16 << 20);
      expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'raw', image, raw)).exitCode).toBe(0);
      expect((await stat(raw)).blocks * 512).toBeLessThan(4 << 20); // the 14 MiB of zeros are holes
    });
  });

  it('qcow2 with compressed clusters → raw: identical', async () => {
    await inTempDir(async (dir) => {
      const plain = `${dir}/plain.qcow2`;
      await qemuImg('create', '-q', '-f', 'qcow2', plain, '4M');
      await qemuIo(plain, 'write -P 0x5a 1M 1M');
      expect((await qemuImg('convert', '-c', '-O', 'qcow2', plain, `${dir}/c.qcow2`)).exitCode).toBe(0);
      expect((await runCli(['convert', '-O', 'raw', `${dir}/c.qcow2`, `${dir}/c.raw`])).exitCode).toBe(0);
      expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'raw', plain, `${dir}/c.raw`)).exitCode).toBe(0);
    });
  });

  it.each([[[]], [['-o', 'cluster_size=4k,refcount_bits=8']], [['-o', 'compat=0.10', '-t', 'writeback']]])(
    'raw → qcow2 %j: identical, clean, and zero ranges stay unallocated',
    async (opts) => {
      await inTempDir(async (dir) => {
        const raw = `${dir}/a.raw`;
        const image = `${dir}/a.qcow2`;
        const data = new Uint8Array(3 << 20);
        data.set(pseudoRandomBytes(300_000, 7), 100_000); // unaligned on both ends
        data.set(pseudoRandomBytes(5, 9), (3 << 20) - 5);
        await writeFile(raw, data);
        const r = await runCli(['convert', '-O', 'qcow2', ...opts, raw, image]);
        expect(r).toEqual({ stdout: '', stderr: '', exitCode: 0 });
        await expectClean(image);
        expect((await qemuImg('compare', '-f', 'raw', '-F', 'qcow2', raw, image)).exitCode).toBe(0);
        const map = (await qemuImgJson('map', image)) as Array<{ start: number; length: number; data: boolean }>;
        const dataBytes = map.filter((e) => e.data).reduce((sum, e) => sum + e.length, 0);
        expect(dataBytes).toBeLessThanOrEqual(300_000 + 5 + 4 * 65536);
        expect(dataBytes).toBeGreaterThanOrEqual(300_000);
      });
    },
  );

  it('raw → qcow2 -c: the same clusters compressed, allocated and packed as qemu-img convert -c', async () => {
    await inTempDir(async (dir) => {
      const raw = `${dir}/a.raw`;
      const text = new TextEncoder().encode('compressible qcow2-verify text '.repeat(20_000));
      const data = new Uint8Array(text.length + 100_000 + 300_000 + 1001);
      data.set(text);
      data.set(pseudoRandomBytes(300_000, 11), text.length + 100_000 - 1000); // incompressible clusters stay normal
      data.set(pseudoRandomBytes(1001, 12).map((b) => b & 1), data.length - 1001); // an odd, compressible tail
      await writeFile(raw, data);
      expect((await runCli(['convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4k', raw, `${dir}/ours.qcow2`])).exitCode).toBe(0);
      expect((await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4k', raw, `${dir}/theirs.qcow2`)).exitCode).toBe(0);
      await expectClean(`${dir}/ours.qcow2`);
      expect((await qemuImg('compare', '-f', 'raw', '-F', 'qcow2', raw, `${dir}/ours.qcow2`)).exitCode).toBe(0);
      const counts = async (path: string) => {
        const check = (await qemuImgJson('check', path)) as Record<string, unknown>;
        return [check['allocated-clusters'], check['compressed-clusters'], check['image-end-offset']];
      };
      expect(await counts(`${dir}/ours.qcow2`)).toEqual(await counts(`${dir}/theirs.qcow2`));
      // qemu-img rounds the file's end up to a sector after the last stream (its
      // zlib may pack a stream a few bytes shorter or longer than Node's, so no equality)
      const [ours, theirs] = [(await stat(`${dir}/ours.qcow2`)).size, (await stat(`${dir}/theirs.qcow2`)).size];
      expect(theirs % 512).toBe(0);
      expect(ours % 512).toBe(0);
      expect((await runCli(['convert', '-c', '-O', 'raw', raw, `${dir}/b.raw`])).exitCode).toBe(2);
    });
  });

  it('raw → qcow2 -c -o compression_type=zstd both ways: each side opens, overwrites and checks the other\'s image', async () => {
    await inTempDir(async (dir) => {
      const raw = `${dir}/a.raw`;
      const text = new TextEncoder().encode('zstd clusters of qcow2-verify '.repeat(10_000));
      const data = new Uint8Array(512 * 1024); // the last 64 KiB stay zero: unallocated, room for a compressed write
      data.set(text);
      data.set(pseudoRandomBytes(100_000, 13), 350_000); // incompressible clusters stay normal
      await writeFile(raw, data);
      const [ours, theirs] = [`${dir}/ours.qcow2`, `${dir}/theirs.qcow2`];
      expect((await runCli(['convert', '-c', '-O', 'qcow2', '-o', 'cluster_size=4k,compression_type=zstd', raw, ours])).exitCode).toBe(0);
      expect((await qemuImg('convert', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4k,compression_type=zstd', raw, theirs)).exitCode).toBe(0);
      const facts = async (path: string) => {
        const info = (await qemuImgJson('info', path)) as { 'format-specific': { data: Record<string, unknown> } };
        const check = (await qemuImgJson('check', path)) as Record<string, unknown>;
        return [info['format-specific'].data['compression-type'], check['allocated-clusters'], check['compressed-clusters']];
      };
      expect(await facts(ours)).toEqual(await facts(theirs));
      expect((await facts(ours))[0]).toBe('zstd');
      // QEMU overwrites ours (a normal write into a compressed cluster, a compressed one into a free one), we overwrite theirs alike
      const free = 480 * 1024;
      const edits = ['write -P 0x5a 100 1000', `write -c -P 0x6b ${free} 4096`];
      const expected = data.slice();
      expected.fill(0x5a, 100, 1100);
      expected.fill(0x6b, free, free + 4096);
      await writeFile(`${dir}/expected.raw`, expected);
      for (const [path, writer] of [[ours, 'qemu'], [theirs, 'ours']] as const) {
        const run = writer === 'qemu' ? await qemuIo(path, ...edits) : await runCli(['io', path, ...edits.flatMap((e) => ['-c', e])]);
        expect(run.exitCode, `${writer} writes`).toBe(0);
        await expectClean(path);
        expect((await qemuImg('compare', '-f', 'raw', '-F', 'qcow2', `${dir}/expected.raw`, path)).exitCode, `${writer} wrote ${path}`).toBe(0);
        expect((await runCli(['io', '-r', path, '-c', `read -P 0x6b ${free} 4096`])).exitCode).toBe(0);
      }
    });
  });

  it('a raw file of odd length becomes an image rounded up to 512 bytes', async () => {
    await inTempDir(async (dir) => {
      await writeFile(`${dir}/odd.raw`, pseudoRandomBytes(1000, 3));
      expect((await runCli(['convert', '-O', 'qcow2', `${dir}/odd.raw`, `${dir}/odd.qcow2`])).exitCode).toBe(0);
      const info = (await qemuImgJson('info', `${dir}/odd.qcow2`)) as Record<string, unknown>;
      expect(info['virtual-size']).toBe(1024);
      expect((await qemuIo(`${dir}/odd.qcow2`, 'read -P 0 1000 24')).stdout).not.toContain('failed');
    });
  });

  it('refuses unknown output formats and -o with raw as usage errors', async () => {
    await inTempDir(async (dir) => {
      await writeFile(`${dir}/a.raw`, new Uint8Array(512));
      const vmdk = await runCli(['convert', '-O', 'vmdk', `${dir}/a.raw`, `${dir}/b`]);
      expect(vmdk.exitCode).toBe(2);
      expect(vmdk.stderr).toBe("qcow2-verify: convert: unsupported output format 'vmdk' (raw or qcow2)\n");
      const opt = await runCli(['convert', '-o', 'cluster_size=4k', `${dir}/a.raw`, `${dir}/b`]);
      expect(opt.exitCode).toBe(2);
      const cache = await runCli(['convert', '-t', 'none', `${dir}/a.raw`, `${dir}/b`]);
      expect(cache.stderr).toBe("qcow2-verify: convert: unsupported cache mode 'none' (unsafe or writeback)\n");
      expect(cache.exitCode).toBe(2);
      const same = await runCli(['convert', `${dir}/a.raw`, `${dir}/../${basename(dir)}/a.raw`]);
      expect(same.exitCode).toBe(2);
      expect(same.stderr).toMatch(/is the input .* \(same file: device/);
      expect((await stat(`${dir}/a.raw`)).size).toBe(512);
      const key = await runCli(['convert', '-O', 'qcow2', '-o', 'bogus=1', `${dir}/a.raw`, `${dir}/b`]);
      expect(key.exitCode).toBe(2);
      expect(key.stderr).toMatch(/unknown -o option 'bogus'/);
    });
  });
});
