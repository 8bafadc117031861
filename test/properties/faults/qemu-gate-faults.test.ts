// QEMU's faults through the gate's own path (runProperty and replayOps with
// impl qemu, the registry's QEMU fault driver): blkdebug errors and SIGKILL
// drawn and replayed like any step, the coverage naming the events that fired,
// the repro script running the same faults on QEMU; and a planted lie (a QEMU
// that drops a write it acknowledged in the blkdebug process) is caught.
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ImageOptions } from '../../../model/index.js';
import { formatText, replayOps, runProperty, type Step } from '../../../properties/index.js';
import { saveReproScript } from '../../../properties/report/save-repro-script.js';

const planted = { dropAcknowledgedWrite: false };

vi.mock('../../../properties/faults/qemu-fault-driver.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../properties/faults/qemu-fault-driver.js')>();
  return {
    ...original,
    async createQemuFaultDriver(options: ImageOptions) {
      const driver = await original.createQemuFaultDriver(options);
      const applyUnderFault = driver.applyUnderFault.bind(driver);
      // the lie: a write the blkdebug process acknowledged is gone once it quits (its clusters discarded behind the property's back)
      driver.applyUnderFault = async (op, rule) => {
        const run = await applyUnderFault(op, rule);
        if (planted.dropAcknowledgedWrite && op.kind === 'write' && run.first.ok) await driver.apply({ kind: 'discard', offset: op.offset, length: op.length });
        return run;
      };
      return driver;
    },
  };
});

afterEach(() => {
  planted.dropAcknowledgedWrite = false;
});

const options = (lazyRefcounts: boolean): ImageOptions => ({ version: 3, clusterBits: 12, refcountBits: 16, lazyRefcounts, virtualSize: 256 * 1024 });

/** Old data, flushed; new data in two ways under blkdebug; a kill with some writes not flushed; a read of everything. */
const steps: Step[] = [
  { kind: 'write', offset: 0, length: 64 * 1024, pattern: 0x11 },
  { kind: 'flush' },
  { kind: 'ioError', op: { kind: 'write', offset: 8 * 1024, length: 16 * 1024, pattern: 0x22 }, access: 'write', nth: 1, errno: 'EIO', persistent: false, event: 'write_aio' },
  { kind: 'ioError', op: { kind: 'write', offset: 128 * 1024, length: 8 * 1024, pattern: 0x33 }, access: 'write', nth: 1, errno: 'ENOSPC', persistent: true, event: 'cluster_alloc' },
  { kind: 'write', offset: 100 * 1024, length: 20 * 1024, pattern: 0x44 },
  { kind: 'discard', offset: 0, length: 4096 },
  { kind: 'crash', seed: 0 },
  { kind: 'read', offset: 0, length: 256 * 1024 },
];

/** A bound on a harness hang only; the runs are bounded by count. */
const timeoutMs = 10 * 60 * 1000;

describe('crashConsistency against QEMU (gate path)', () => {
  for (const lazy of [false, true]) {
    it(`replays blkdebug errors and a SIGKILL, lazy refcounts ${lazy ? 'on' : 'off'}: QEMU holds, and the coverage names the events`, async () => {
      const result = await replayOps({ impl: 'qemu', options: options(lazy), ops: steps, properties: ['crashConsistency'] });
      expect(result.status, formatText(result)).toBe('passed');
      const faults = result.coverage.faults;
      expect(faults['ioError:blkdebug write_aio']).toBe(1);
      expect(faults['ioError:data']).toBe(1);
      expect(faults['ioError:blkdebug cluster_alloc']).toBe(1);
      expect(faults['ioError:refcount block']).toBe(1);
      expect(faults['crash:sigkill']).toBe(1);
      // with lazy refcounts the killed process left the dirty bit: check -r all repaired it (iotest 039)
      expect(faults['crash:dirty, repaired']).toBe(lazy ? 1 : undefined);
    }, timeoutMs);
  }

  for (const lazy of [false, true]) {
    it(`kills qemu-io inside an op, at a blkdebug break point in its flush, lazy refcounts ${lazy ? 'on' : 'off'}`, async () => {
      const killed: Step[] = [
        { kind: 'write', offset: 0, length: 64 * 1024, pattern: 0x11 },
        { kind: 'flush' },
        // a write into fresh clusters: its L2 entries are written in the flush, where qemu-io is held and killed
        { kind: 'crash', seed: 0, during: { op: { kind: 'write', offset: 192 * 1024, length: 8 * 1024, pattern: 0x22 }, access: 'write', nth: 1, event: 'l2_update' } },
        { kind: 'crash', seed: 0, during: { op: { kind: 'discard', offset: 0, length: 8 * 1024 }, access: 'write', nth: 1, event: 'l1_grow_write_table' } },
        { kind: 'read', offset: 0, length: 256 * 1024 },
      ];
      const result = await replayOps({ impl: 'qemu', options: options(lazy), ops: killed, properties: ['crashConsistency'] });
      expect(result.status, formatText(result)).toBe('passed');
      const faults = result.coverage.faults;
      expect(faults['crash:blkdebug break l2_update'], JSON.stringify(faults)).toBe(1);
      expect(faults['crash:L2']).toBe(1);
      expect(faults['crash@inside write']).toBe(1);
      // a 256 KiB disk's L1 table never grows: the discard and its flush ended, then the kill
      expect(faults['crash:break not reached']).toBe(1);
      expect(faults['crash@inside discard']).toBe(1);
    }, timeoutMs);
  }

  it('reads an injected EIO on a compressed write as io, not as QEMU\'s EIO refusal to overwrite (gate --impl qemu --seed 12)', async () => {
    // QEMU 7.2 answers a compressed write over an allocated cluster with EIO too; here the cluster is free
    const ops: Step[] = [{ kind: 'ioError', op: { kind: 'writeCompressed', offset: 0, length: 4096, pattern: 0x5c }, access: 'write', nth: 1, errno: 'EIO', persistent: false, event: 'l2_update', occurrence: 1 }];
    const result = await replayOps({ impl: 'qemu', options: options(false), ops, properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('passed');
    expect(result.coverage.faults['ioError:blkdebug l2_update']).toBe(1);
  }, timeoutMs);

  it('kills qemu-io where its refcount table grows: the new table written, then the header that activates it', async () => {
    // 512-byte clusters and 64-bit refcounts: one table cluster covers 2 MiB of file, which a 2 MiB write outgrows
    const small: ImageOptions = { version: 3, clusterBits: 9, refcountBits: 64, lazyRefcounts: false, virtualSize: 2 * 1024 * 1024 };
    const killedAt = (event: 'refblock_alloc_write_table' | 'refblock_alloc_switch_table'): Step[] => [
      { kind: 'crash', seed: 0, during: { op: { kind: 'write', offset: 0, length: 2 * 1024 * 1024, pattern: 7 }, access: 'write', nth: 1, event } },
      { kind: 'read', offset: 0, length: 4096 },
    ];
    const table = await replayOps({ impl: 'qemu', options: small, ops: killedAt('refblock_alloc_write_table'), properties: ['crashConsistency'] });
    expect(table.status, formatText(table)).toBe('passed');
    expect(table.coverage.faults['crash:refcount table']).toBe(1);
    const header = await replayOps({ impl: 'qemu', options: small, ops: killedAt('refblock_alloc_switch_table'), properties: ['crashConsistency'] });
    expect(header.status, formatText(header)).toBe('passed');
    expect(header.coverage.faults['crash:header']).toBe(1);
  }, timeoutMs);

  it('draws faults into random sequences for --impl qemu (runProperty)', async () => {
    const result = await runProperty({ property: 'crashConsistency', impl: 'qemu', seed: 15, numRuns: 12 });
    expect(result.status, formatText(result)).toBe('passed');
    const faults = result.coverage.faults;
    const count = (prefix: string) => Object.entries(faults).filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
    expect(count('crash:sigkill')).toBeGreaterThan(0);
    // kills inside ops, at break points the op reached
    expect(count('crash:blkdebug break ')).toBeGreaterThan(0);
    expect(count('ioError@')).toBeGreaterThan(0);
    // not vacuous: some injected error was seen by an op or by qemu-io's closing flush
    expect(count('ioError:blkdebug ')).toBeGreaterThan(0);
  }, timeoutMs);

  it('fails a planted lie: a write acknowledged in the blkdebug process is lost', async () => {
    planted.dropAcknowledgedWrite = true;
    // an event a 16 KiB write inside an allocated L2 table never reaches: the write succeeds and nothing fails at close
    const unreached: Step = { kind: 'ioError', op: { kind: 'write', offset: 8 * 1024, length: 16 * 1024, pattern: 0x22 }, access: 'write', nth: 1, errno: 'EIO', persistent: false, event: 'l1_grow_alloc_table' };
    const result = await replayOps({ impl: 'qemu', options: options(false), ops: [...steps.slice(0, 2), unreached], properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    // the op succeeded and nothing failed at close, so the disk must hold it: it does not
    expect(result.failure).toMatchObject({ kind: 'violation', check: 'io-error', message: expect.stringMatching(/after qemu-io quit: guest sector at 0x2000 reads bytes that no state since the last flush holds there/) });
  }, timeoutMs);

  it('a disk QEMU cannot read after a kill is a failure, not a harness error: a discard of compressed clusters, killed before its L2 update', async () => {
    // QEMU 7.2 punches the freed stream's bytes at once (qcow2_process_discards) while the L2 entry still names it:
    // after the kill every read of those clusters fails with EIO
    const ops: Step[] = [
      { kind: 'writeCompressed', offset: 0, length: 8 * 1024, pattern: 0x30 },
      { kind: 'flush' },
      { kind: 'discard', offset: 0, length: 8 * 1024 },
      { kind: 'crash', seed: 0 },
    ];
    const result = await replayOps({ impl: 'qemu', options: options(false), ops, properties: ['crashConsistency'] });
    expect(result.status, formatText(result)).toBe('property-failed');
    if (result.status !== 'property-failed') return;
    expect(result.failure).toMatchObject({ kind: 'violation', check: 'crash', message: expect.stringMatching(/the guest disk does not read: .*Input\/output error/) });
  }, timeoutMs);

  it('the repro script runs the faults on QEMU: blkdebug fails the write, qemu-img check is clean', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-qfault-repro-'));
    try {
      // everything flushed before the kill, so the model's final disk is QEMU's
      const flushedThenKilled = [...steps.slice(0, 4), { kind: 'flush' }, { kind: 'crash', seed: 0 }] as const satisfies readonly Step[];
      const script = await saveReproScript(dir, { options: options(true), steps: flushedThenKilled }, ['crashConsistency', 'qemu']);
      const run = await execa('sh', [script], { reject: false, all: true });
      expect(run.all).toContain('write failed: Input/output error');
      expect(run.all).toContain('write failed: No space left on device');
      // the kill left the lazy image dirty: check -r all repaired it, and the final check finds it clean
      expect(run.all).toContain('Double checking the fixed image now...');
      expect(run.all).toMatch(/--- qemu-img check [^\n]*\nNo errors were found on the image\./);
      // the final compare with the model's disk: identical
      expect(run.all).toMatch(/Images are identical\.\nexit 0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, timeoutMs);

  it('the repro script kills qemu-io at the break point inside the op, as the driver does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-qkill-repro-'));
    try {
      const killedInside = [
        { kind: 'write', offset: 0, length: 64 * 1024, pattern: 0x11 },
        { kind: 'flush' },
        { kind: 'crash', seed: 0, during: { op: { kind: 'write', offset: 192 * 1024, length: 8 * 1024, pattern: 0x22 }, access: 'write', nth: 1, event: 'l2_update' } },
      ] as const satisfies readonly Step[];
      const script = await saveReproScript(dir, { options: options(true), steps: killedInside }, ['crashConsistency', 'qemu']);
      const run = await execa('sh', [script], { reject: false, all: true, timeout: timeoutMs });
      // held in the flush, at the L2 update of the new cluster: the kill lost the write (the contract allows it); the first write and
      // its flush ran in the same `-t unsafe` process, whose lazy refcounts were never written: check -r all repairs the dirty image
      expect(run.all).toMatch(/wrote 8192\/8192 bytes at offset 196608\n[^\n]*\nqemu-io> blkdebug: Suspended request 'crash'\n(?:ERROR cluster \d+ refcount=0 reference=1\n)+/);
      expect(run.all).toContain('Double checking the fixed image now...');
      expect(run.all).toMatch(/--- qemu-img check [^\n]*\nNo errors were found on the image\./);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, timeoutMs);

  it('the repro script kills inside an op the qemu-io that ran the ops since the last reopen, their metadata unflushed, as the driver does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-qkill-pending-'));
    try {
      // the write to cluster 0 is not flushed: the driver's session still holds its L2 entry when the kill comes
      const pendingThenKilled = [
        { kind: 'write', offset: 0, length: 8 * 1024, pattern: 0x11 },
        { kind: 'crash', seed: 0, during: { op: { kind: 'write', offset: 192 * 1024, length: 8 * 1024, pattern: 0x22 }, access: 'write', nth: 1, event: 'l2_update' } },
        { kind: 'read', offset: 0, length: 4096 },
      ] as const satisfies readonly Step[];
      const script = await saveReproScript(dir, { options: options(false), steps: pendingThenKilled }, ['crashConsistency', 'qemu']);
      const text = await readFile(script, 'utf8');
      expect(text).toContain("printf '%s\\n' 'write -P 0x11 0x0 0x2000' 'break l2_update crash' 'write -P 0x22 0x30000 0x2000' 'flush' | stdbuf -o0 qemu-io -t unsafe");
      const run = await execa('sh', [script], { reject: false, all: true, timeout: timeoutMs });
      expect(run.all).toContain("qemu-io> blkdebug: Suspended request 'crash'");
      // the kill lost both writes (the contract allows it: neither was flushed); a closed process before the kill would have made the first durable
      expect(run.all).toContain('Pattern verification failed at offset 0, 4096 bytes');
      // the flush wrote the refcount blocks before it was held at the L2 update: leaks (allowed after a fault), no corruption
      expect(run.all).toMatch(/--- qemu-img check [^\n]*\n(?:Leaked cluster \d+ refcount=1 reference=0\n)+\n\d+ leaked clusters were found on the image\.[^]*?\nexit 3\n/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, timeoutMs);
  it('the repro script reads the guest disk after each fault: the EIO a killed discard of compressed clusters leaves shows though a later write hides it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-qkill-read-'));
    try {
      const hiddenLater = [
        { kind: 'writeCompressed', offset: 0, length: 8 * 1024, pattern: 0x30 },
        { kind: 'flush' },
        { kind: 'discard', offset: 0, length: 8 * 1024 },
        { kind: 'crash', seed: 0 },
        { kind: 'write', offset: 0, length: 8 * 1024, pattern: 0x44 },
      ] as const satisfies readonly Step[];
      const script = await saveReproScript(dir, { options: options(false), steps: hiddenLater }, ['crashConsistency', 'qemu']);
      const run = await execa('sh', [script], { reject: false, all: true, timeout: timeoutMs });
      // QEMU 7.2's known divergence (docs/qemu-findings.md): the punched stream is still named by the L2 entry after the kill
      // (qemu-img convert reports the second cluster too, or not, as its requests happen to run)
      expect(run.all).toMatch(/qemu-img: error while reading at byte 0: Input\/output error\n(?:qemu-img: error while reading at byte \d+: Input\/output error\n)*guest disk read: exit 1/);
      // the write after it rewrites those clusters: the final judges alone would not show it
      expect(run.all).toMatch(/Images are identical\.\nexit 0/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, timeoutMs);
});
