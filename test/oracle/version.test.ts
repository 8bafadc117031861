import { describe, expect, it } from 'vitest';
import { QemuMissingError, openQemuIo, qemuImgInfo, qemuVersion } from '../../oracle/index.js';

describe('qemuVersion', () => {
  it('names both tools\' versions and the binaries they belong to', async () => {
    const version = await qemuVersion();
    expect(version.qemuImg).toMatch(/^\d+\.\d+\.\d+/);
    expect(version.qemuIo).toMatch(/^\d+\.\d+\.\d+/);
    expect(version.qemuImgPath).toMatch(/^\/.*\/qemu-img$/);
    expect(version.qemuIoPath).toMatch(/^\/.*\/qemu-io$/);
    expect(await qemuVersion()).toEqual(version);
  });
});

describe('missing binaries', () => {
  it('name the tool and the Debian package, never a raw ENOENT', async () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent-qemu-dir';
    try {
      const info = qemuImgInfo('/tmp/x.qcow2');
      await expect(info).rejects.toBeInstanceOf(QemuMissingError);
      await expect(info).rejects.toThrow('qemu-img not found on PATH; install Debian package qemu-utils');
      await expect(openQemuIo('/tmp/x.qcow2')).rejects.toThrow('qemu-io not found on PATH; install Debian package qemu-utils');
    } finally {
      process.env.PATH = saved;
    }
  });
});
