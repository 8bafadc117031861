import { describe, expect, it } from 'vitest';
import { parseImageOptions, roundUpToSector } from '../../../cli/commands/create.js';
import { runCli } from '../run-cli.js';
import { expectClean, inTempDir, qemuImg, qemuImgJson } from '../qemu.js';

describe('parseImageOptions', () => {
  it('reads qemu-img -o lists, several -o joined', () => {
    expect(parseImageOptions([])).toEqual({});
    expect(parseImageOptions(['cluster_size=4k,refcount_bits=1', 'lazy_refcounts=on'])).toEqual({
      clusterSize: 4096, refcountBits: 1, lazyRefcounts: true,
    });
    expect(parseImageOptions(['compat=v2'])).toEqual({ compat: '0.10' });
    expect(parseImageOptions(['compat=1.1,lazy_refcounts=off'])).toEqual({ compat: '1.1', lazyRefcounts: false });
  });

  it.each([
    ['foo=bar', /unknown -o option 'foo'/],
    ['cluster_size', /needs a value/],
    ['cluster_size=1000', /power of two between 512 and 2048k/],
    ['cluster_size=4M', /power of two between 512 and 2048k/],
    ['refcount_bits=3', /power of two and may not exceed 64/],
    ['refcount_bits=128', /power of two and may not exceed 64/],
    ['compat=1.0', /expected 0.10 \(v2\) or 1.1 \(v3\)/],
    ['lazy_refcounts=maybe', /expected on or off/],
    ['compat=0.10,lazy_refcounts=on', /only supported with compat=1.1/],
    ['compat=0.10,refcount_bits=8', /require compat=1.1/],
  ])('%s is refused: %s', (text, message) => {
    expect(() => parseImageOptions([text])).toThrow(message);
  });

  it('rounds sizes up to 512-byte sectors as qemu-img create does', () => {
    expect(roundUpToSector(1000)).toBe(1024);
    expect(roundUpToSector(1536)).toBe(1536);
  });
});

describe('create (end to end against qemu-img)', () => {
  it.each([
    [[], '1G'],
    [['-o', 'cluster_size=4k,refcount_bits=1'], '100M'],
    [['-o', 'compat=0.10'], '1M'],
    [['-o', 'lazy_refcounts=on', '-o', 'refcount_bits=64,cluster_size=2M'], '3G'],
    [['-o', 'cluster_size=512'], '1000'],
  ])('create %j %s: qemu-img check is clean and qemu-img info agrees', async (opts, size) => {
    await inTempDir(async (dir) => {
      const ours = `${dir}/ours.qcow2`;
      const theirs = `${dir}/theirs.qcow2`;
      const run = await runCli(['create', ...opts, ours, size]);
      expect(run.stderr).toBe('');
      expect(run.exitCode).toBe(0);
      const q = await qemuImg('create', '-f', 'qcow2', ...opts, theirs, size);
      expect(q.exitCode).toBe(0);
      // The same "Formatting …" line qemu-img prints, up to the file name.
      expect(run.stdout.replace(ours, 'F')).toBe(`${q.stdout.replace(theirs, 'F')}\n`);
      await expectClean(ours);
      const a = (await qemuImgJson('info', ours)) as Record<string, unknown>;
      const b = (await qemuImgJson('info', theirs)) as Record<string, unknown>;
      for (const key of ['virtual-size', 'cluster-size', 'format', 'format-specific', 'dirty-flag']) {
        expect(a[key], key).toEqual(b[key]);
      }
    });
  });

  it('compression_type=zstd: the same Formatting line, header and info as qemu-img create; compat=0.10 refused', async () => {
    await inTempDir(async (dir) => {
      const ours = await runCli(['create', '-o', 'compression_type=zstd', `${dir}/ours.qcow2`, '1M']);
      const theirs = await qemuImg('create', '-f', 'qcow2', '-o', 'compression_type=zstd', `${dir}/theirs.qcow2`, '1M');
      expect(ours.exitCode).toBe(0);
      expect(ours.stdout.replace('ours', 'theirs')).toBe(`${theirs.stdout}\n`);
      const info = (path: string) => qemuImg('info', '--output=json', path).then((r) => JSON.parse(r.stdout) as { 'format-specific': unknown });
      expect((await info(`${dir}/ours.qcow2`))['format-specific']).toEqual((await info(`${dir}/theirs.qcow2`))['format-specific']);
      const v2 = await runCli(['create', '-o', 'compression_type=zstd,compat=0.10', `${dir}/v2.qcow2`, '1M']);
      expect(v2.exitCode).toBe(2);
      expect(v2.stderr).toMatch(/Non-zlib compression type is only supported with compatibility level 1.1/);
    });
  });

  it('refuses unknown -o keys and bad sizes with one usage line and exit 2, creating nothing', async () => {
    await inTempDir(async (dir) => {
      const file = `${dir}/x.qcow2`;
      const r = await runCli(['create', '-o', 'foo=bar', file, '1M']);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toBe("qcow2-verify: unknown -o option 'foo' (known: cluster_size, refcount_bits, compat, lazy_refcounts, compression_type, extended_l2)\n");
      const s = await runCli(['create', file, '1e3']);
      expect(s.exitCode).toBe(2);
      expect(s.stderr).toMatch(/^qcow2-verify: invalid image size '1e3'.*\n$/);
      expect((await qemuImg('info', file)).exitCode).not.toBe(0);
      const t = await runCli(['create', '-f', 'vmdk', file, '1M']);
      expect(t.exitCode).toBe(2);
      const u = await runCli(['create', file]);
      expect(u.exitCode).toBe(2);
      expect(u.stderr).toMatch(/missing required argument 'size'/);
    });
  });
});
