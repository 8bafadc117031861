// `check -r leaks|all` repairs as qemu-img check -r does and prints the same
// report; both repairs are judged by a second qemu-img check. The damaged
// images come from QEMU itself: blkdebug failing every l1_update while a write
// allocates (iotest 026's way to leak), and a refcount lowered by hand.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCheckRepair } from '../../../cli/commands/check.js';
import { inTempDir, qemuImg, qemuIo } from '../qemu.js';

async function leakyImage(dir: string): Promise<string> {
  const path = join(dir, 'leaky.qcow2');
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', path, '1M')).exitCode).toBe(0);
  await qemuIo(path, 'write -P 0x11 0 100k', 'flush');
  const conf = join(dir, 'blkdebug.conf');
  await writeFile(conf, '[inject-error]\nevent = "l1_update"\nerrno = "5"\nonce = "off"\n');
  await qemuIo(`blkdebug:${conf}:${path}`, 'write -P 0xab 0 400k');
  return path;
}

/** A data cluster's refcount set to 0 while an L2 entry references it (a corruption `-r all` fixes). */
async function corruptImage(dir: string): Promise<string> {
  const path = join(dir, 'corrupt.qcow2');
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', path, '1M')).exitCode).toBe(0);
  await qemuIo(path, 'write -P 0x22 0 8k');
  const bytes = await readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const refblock = Number(view.getBigUint64(Number(view.getBigUint64(48))));
  const l1 = Number(view.getBigUint64(40));
  const l2 = Number(view.getBigUint64(l1) & 0x00fffffffffffe00n);
  const data = Number(view.getBigUint64(l2) & 0x00fffffffffffe00n);
  view.setUint16(refblock + 2 * (data / 4096), 0);
  await writeFile(path, bytes);
  return path;
}

/** A lazy-refcounts image whose qemu-io was killed after a write (iotest 039): dirty, its data clusters counted 0. */
async function killedLazyImage(dir: string): Promise<string> {
  const path = join(dir, 'killed.qcow2');
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096,lazy_refcounts=on', path, '1M')).exitCode).toBe(0);
  await qemuIo(path, 'write -P 0x33 0 16k', 'sigraise 9');
  return path;
}

async function ours(path: string, mode: 'leaks' | 'all') {
  const out: string[] = [];
  const err: string[] = [];
  const exitCode = await runCheckRepair(path, { output: 'human', forceShare: false }, mode, (l) => out.push(l), (l) => err.push(l));
  return { stdout: out.join('\n'), stderr: err.join('\n'), exitCode };
}

/** Our stderr lines up to a refusal (the CliError's own line is printed by main, as qemu-img's last line). */
async function oursRefused(path: string, mode: 'leaks' | 'all'): Promise<{ readonly stderr: string; readonly error: unknown }> {
  const err: string[] = [];
  const error: unknown = await runCheckRepair(path, { output: 'human', forceShare: false }, mode, () => undefined, (l) => err.push(l)).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { stderr: err.join('\n'), error };
}

describe('check -r', () => {
  for (const [name, make, mode] of [
    ['leaks', leakyImage, 'leaks'],
    ['leaks with -r all', leakyImage, 'all'],
    ['a refcount below its references', corruptImage, 'all'],
  ] as const) {
    it(`repairs ${name} as qemu-img does, with the same report`, async () => {
      await inTempDir(async (dir) => {
        const path = await make(dir);
        const theirs = join(dir, 'theirs.qcow2');
        await copyFile(path, theirs);
        const before = await qemuImg('check', path);
        expect(before.exitCode).not.toBe(0);
        const q = await qemuImg('check', '-r', mode, theirs);
        const o = await ours(path, mode);
        // QEMU rebuilds refcount structures at the end of the file for a referenced cluster counted 0; we repair in place
        const endOffset = (text: string) => Number(/Image end offset: (\d+)/.exec(text)?.[1]);
        const withoutEnd = (text: string) => text.replace(/Image end offset: \d+/, '');
        expect(withoutEnd(o.stdout)).toBe(withoutEnd(q.stdout));
        if (make === leakyImage) expect(o.stdout).toBe(q.stdout);
        else expect(endOffset(o.stdout)).toBeLessThan(endOffset(q.stdout));
        expect(o.exitCode).toBe(q.exitCode);
        // the repaired clusters of both, as qemu-img prints them (its rebuild repairs the old structures it left instead)
        const repairing = (text: string) => text.split('\n').filter((l) => l.startsWith('Repairing cluster')).sort();
        if (make === leakyImage) expect(repairing(o.stderr)).toEqual(repairing(q.stderr));
        else expect(repairing(o.stderr)).toEqual([expect.stringMatching(/^Repairing cluster \d+ refcount=0 reference=1$/)]);
        for (const repaired of [path, theirs]) expect((await qemuImg('check', repaired)).exitCode).toBe(0);
      });
    });
  }

  it('-r leaks refuses a referenced cluster counted 0, as qemu-img does (exit 1), and writes nothing', async () => {
    await inTempDir(async (dir) => {
      const path = await corruptImage(dir);
      const theirs = join(dir, 'theirs.qcow2');
      await copyFile(path, theirs);
      const q = await qemuImg('check', '-r', 'leaks', theirs);
      expect(q).toMatchObject({ stdout: '', exitCode: 1 });
      expect(q.stderr).toContain('ERROR need to rebuild refcount structures');
      await expect(ours(path, 'leaks')).rejects.toMatchObject({ message: 'Check failed: Input/output error', exitCode: 1 });
      // nothing was written
      expect(Buffer.compare(await readFile(path), await readFile(theirs))).toBe(0);
    });
  });

  it('-r leaks prints the errors qemu-img prints before it refuses: none of check_oflag_copied, which QEMU never reaches', async () => {
    await inTempDir(async (dir) => {
      const path = await killedLazyImage(dir);
      const theirs = join(dir, 'theirs.qcow2');
      await copyFile(path, theirs);
      const q = await qemuImg('check', '-r', 'leaks', theirs);
      expect(q.exitCode).toBe(1);
      const o = await oursRefused(path, 'leaks');
      expect(o.error).toMatchObject({ message: 'Check failed: Input/output error', exitCode: 1 });
      expect(o.stderr).toContain('refcount=0 reference=1');
      expect(`${o.stderr}\nqemu-img: Check failed: Input/output error`).toBe(q.stderr);
    });
  });

  it('-r all on a dirty lazy-refcounts image (qemu-io killed) reports the corruptions it fixed, as qemu-img does', async () => {
    await inTempDir(async (dir) => {
      const path = await killedLazyImage(dir);
      const theirs = join(dir, 'theirs.qcow2');
      await copyFile(path, theirs);
      const q = await qemuImg('check', '-r', 'all', theirs);
      const o = await ours(path, 'all');
      const withoutEnd = (text: string) => text.replace(/Image end offset: \d+/, '');
      expect(q.stdout).toMatch(/ [1-9]\d* corruptions\n/);
      expect(withoutEnd(o.stdout)).toBe(withoutEnd(q.stdout));
      expect(o.exitCode).toBe(q.exitCode);
      for (const repaired of [path, theirs]) expect((await qemuImg('check', repaired)).exitCode).toBe(0);
    });
  });
});
