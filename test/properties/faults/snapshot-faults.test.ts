// Faults inside snapshot operations (issue 15, docs/semantics.md "Faults"):
// the snapshot is whole or absent, the check finds leaks and at most stale
// COPIED flags (on a cluster one reference reaches), and the model's checker,
// its repair report and qemu-img check -r leaks agree on those images, made
// by our engine's crash states and by QEMU 7.2 under blkdebug.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FaultFile, Qcow2Image } from '../../../impl/index.js';
import { bufferReader, checkWith, repairReport } from '../../../model/index.js';
import { qemuImgCheckBytes } from '../../../oracle/index.js';
import { replayOps, type Step } from '../../../properties/index.js';

const run = promisify(execFile);

/** The model's checker against qemu-img check and check -r leaks on one image with stale COPIED flags. */
async function agreeOnStale(bytes: Uint8Array, what: string): Promise<void> {
  const ours = checkWith(bufferReader(bytes), new Map());
  expect(ours.copiedStale, what).toBeGreaterThan(0);
  // only stale flags besides the leaks: what the fault contract allows
  expect(ours.report.corruptions, what).toBe(ours.copiedStale);
  const qemu = await qemuImgCheckBytes(bytes);
  expect({ corruptions: qemu.corruptions, leaks: qemu.leaks }, what).toEqual({ corruptions: ours.report.corruptions, leaks: ours.report.leaks });
  const repaired = await qemuImgCheckBytes(bytes, { repair: 'leaks' });
  const model = repairReport(bufferReader(bytes), 'leaks');
  expect(model.kind, what).toBe('repaired');
  if (model.kind !== 'repaired') return;
  expect({ leaksFixed: model.leaksFixed, corruptionsFixed: model.corruptionsFixed, corruptions: model.remaining.corruptions, leaks: model.remaining.leaks }, what).toEqual({
    leaksFixed: repaired.leaksFixed,
    corruptionsFixed: repaired.corruptionsFixed,
    corruptions: 0,
    leaks: 0,
  });
  expect({ corruptions: repaired.corruptions, leaks: repaired.leaks }, what).toEqual({ corruptions: 0, leaks: 0 });
}

describe('faults inside snapshot operations', () => {
  it('our engine: a crash inside snapshot create leaves the table old or new and stale COPIED flags at worst; qemu-img agrees and -r leaks repairs them', async () => {
    const base = new FaultFile(new Uint8Array(0));
    const setup = await Qcow2Image.create(base, { size: 256 * 1024, clusterSize: 4096 });
    await setup.write(0, new Uint8Array(64 * 1024).fill(0x11));
    await setup.close();
    let stale = 0;
    const lists = new Set<string>();
    for (let nth = 1; nth <= 12; nth++) {
      for (const access of ['write', 'flush'] as const) {
        const file = new FaultFile(base.bytes());
        const image = await Qcow2Image.open(file);
        file.losePowerAt(access, nth);
        await image.snapshots.create('s').catch(() => undefined);
        if (!file.powerLost) continue;
        for (let seed = 0; seed < 4; seed++) {
          const bytes = await file.crashState(seed);
          const what = `power lost at ${access}#${nth}, crash state ${seed}`;
          const ours = checkWith(bufferReader(bytes), new Map());
          expect(ours.report.verdict === 'clean' || ours.report.verdict === 'leaks' || ours.report.corruptions === ours.copiedStale, `${what}: ${ours.report.messages.join('; ')}`).toBe(true);
          const reopened = await Qcow2Image.open(new FaultFile(bytes), { readOnly: true });
          lists.add(reopened.snapshots.list().map((s) => s.name).join(','));
          expect(await reopened.read(0, 64 * 1024), what).toEqual(new Uint8Array(64 * 1024).fill(0x11));
          if (ours.copiedStale > 0 && stale++ < 2) await agreeOnStale(bytes, what);
        }
      }
    }
    expect(stale).toBeGreaterThan(0);
    expect([...lists].sort()).toEqual(['', 's']);
  });

  it('QEMU 7.2: a persistent l2_update error inside snapshot delete leaves flags clear on clusters counted 1 (stale), which -r leaks repairs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'snapshot-faults-'));
    try {
      const image = join(dir, 'a.qcow2');
      const rules = join(dir, 'rules.conf');
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', image, '1M']);
      await run('qemu-io', ['-c', 'write -P 0x11 0 64k', image]);
      await run('qemu-img', ['snapshot', '-c', 's1', image]);
      await run('qemu-io', ['-c', 'write -P 0x22 0 8k', image]);
      await writeFile(rules, '[inject-error]\nevent = "l2_update"\nerrno = "5"\nonce = "off"\n');
      await expect(run('qemu-img', ['snapshot', '-d', 's1', `blkdebug:${rules}:${image}`])).rejects.toThrow(/Input\/output error/);
      const bytes = new Uint8Array(await readFile(image));
      // the table no longer names the snapshot: its drops landed, the active view's flags did not
      const listed = await run('qemu-img', ['snapshot', '-l', image]);
      expect(listed.stdout).not.toContain('s1');
      await agreeOnStale(bytes, 'qemu-img snapshot -d on blkdebug l2_update once=off');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('replay on our engine: crashes and errors inside create, delete and revert hold, and the coverage names the snapshot table and L1 copy', async () => {
    const options = { version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 } as const;
    const steps: Step[] = [{ kind: 'write', offset: 0, length: 65536, pattern: 0x11 }];
    for (let nth = 1; nth <= 8; nth++) {
      steps.push(
        { kind: 'snapshotCreate', name: `p${nth}` },
        { kind: 'crash', seed: nth, during: { op: { kind: 'snapshotCreate', name: `c${nth}` }, access: nth % 2 === 0 ? 'flush' : 'write', nth } },
        { kind: 'write', offset: 4096 * nth, length: 4096, pattern: nth },
        { kind: 'ioError', op: { kind: 'snapshotCreate', name: `e${nth}` }, access: 'write', nth, errno: 'EIO', persistent: nth % 3 === 0 },
        { kind: 'crash', seed: -nth, during: { op: { kind: 'snapshotRevert', name: `p${nth}` }, access: 'write', nth } },
        { kind: 'write', offset: 8192 * nth, length: 4096, pattern: 0x80 + nth },
        { kind: 'ioError', op: { kind: 'snapshotRevert', name: `p${nth}` }, access: nth % 2 === 0 ? 'flush' : 'write', nth, errno: 'ENOSPC', persistent: false },
        { kind: 'crash', seed: 3 * nth, during: { op: { kind: 'snapshotDelete', name: `p${nth}` }, access: nth % 2 === 0 ? 'flush' : 'write', nth } },
        { kind: 'ioError', op: { kind: 'snapshotDelete', name: `e${nth}` }, access: 'write', nth, errno: 'EIO', persistent: false },
      );
    }
    const result = await replayOps({ impl: 'ts', options, ops: steps, properties: ['crashConsistency'] });
    expect(result.status, JSON.stringify(result.status === 'passed' ? '' : result)).toBe('passed');
    const faults = result.coverage.faults;
    expect(faults, JSON.stringify(faults)).toBeDefined();
    expect(faults['crash@inside snapshotCreate']).toBeGreaterThan(0);
    expect(faults['crash@inside snapshotDelete']).toBeGreaterThan(0);
    expect(faults['crash@inside snapshotRevert']).toBeGreaterThan(0);
    expect((faults['crash:snapshot table'] ?? 0) + (faults['ioError:snapshot table'] ?? 0)).toBeGreaterThan(0);
    expect((faults['crash:snapshot L1'] ?? 0) + (faults['ioError:snapshot L1'] ?? 0)).toBeGreaterThan(0);
  });
});
