// QEMU 7.2 under faults (issue 15, iotests 026 and 039 drawn at random): random
// guest sequences run by one qemu-io process, with an I/O error injected by
// blkdebug at a drawn event (once or always), or killed by SIGKILL
// (`sigraise 9`) after a drawn number of operations with lazy refcounts on or
// off. The contract (docs/semantics.md, "Faults"): qemu-img check finds no
// corruption (leaks allowed after an error; a dirty lazy image after
// `check -r all`), and every guest sector reads as the model allows: after one
// failed operation, as the sequence with or without it; after SIGKILL, as the
// state after some operation. Bounded by runs at a fixed seed.
import fc from 'fast-check';
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { disallowedAfterFault, formatOp, initialState, step, type ImageOptions, type ModelState, type Op } from '../../../model/index.js';
import { inTempDir, qemuImg } from '../../cli/qemu.js';

type GuestOp = Extract<Op, { kind: 'write' | 'writeZeroes' | 'discard' }>;

/** iotest 026's blkdebug events that a guest write or discard can reach. */
const events = ['l1_update', 'l2_update', 'l2_alloc_write', 'refblock_alloc', 'refblock_update', 'refblock_alloc_write', 'refblock_alloc_hookup', 'refblock_load', 'cluster_alloc', 'flush_to_disk', 'write_aio', 'read_aio', 'cor_write', 'l2_load'] as const;
const virtualSize = 256 * 1024;

function guestOp(): fc.Arbitrary<GuestOp> {
  const range = fc.tuple(fc.integer({ min: 0, max: virtualSize / 512 - 1 }), fc.integer({ min: 1, max: 64 })).map(([s, n]) => ({
    offset: s * 512,
    length: Math.min(n * 512, virtualSize - s * 512),
  }));
  return fc.oneof(
    { arbitrary: fc.tuple(range, fc.integer({ min: 1, max: 255 })).map(([r, pattern]): GuestOp => ({ kind: 'write', ...r, pattern })), weight: 4 },
    { arbitrary: fc.tuple(range, fc.boolean()).map(([r, unmap]): GuestOp => ({ kind: 'writeZeroes', ...r, unmap })), weight: 1 },
    { arbitrary: range.map((r): GuestOp => ({ kind: 'discard', ...r })), weight: 1 },
  );
}

function options(clusterBits: number, lazyRefcounts: boolean): ImageOptions {
  return { version: 3, clusterBits, refcountBits: 16, lazyRefcounts, virtualSize };
}

async function create(path: string, o: ImageOptions): Promise<void> {
  const r = await qemuImg('create', '-q', '-f', 'qcow2', '-o', `cluster_size=${2 ** o.clusterBits},lazy_refcounts=${o.lazyRefcounts ? 'on' : 'off'}`, path, String(o.virtualSize));
  expect(r.exitCode).toBe(0);
}

/** qemu-io's answer line per operation: true when it failed. */
function failures(output: string, count: number): boolean[] {
  const answers = output.split('\n').filter((l) => /^(wrote |discard \d|\w+ failed: )/.test(l));
  expect(answers.length, output).toBe(count);
  return answers.map((l) => / failed: /.test(l));
}

async function guestBytes(dir: string, path: string): Promise<Uint8Array> {
  const raw = join(dir, 'guest.raw');
  const r = await qemuImg('convert', '-U', '-O', 'raw', path, raw);
  expect(r.exitCode, r.stderr).toBe(0);
  return new Uint8Array(await readFile(raw));
}

function run(o: ImageOptions, ops: readonly GuestOp[]): ModelState[] {
  const states = [initialState(o)];
  for (const op of ops) states.push(step(states.at(-1) as ModelState, op).state);
  return states;
}

/** `qemu-img check` (exit 0 clean, 2 corrupt, 3 leaks only) and what it printed. */
async function check(path: string, ...args: string[]): Promise<{ exitCode: number; text: string }> {
  const r = await qemuImg('check', ...args, path);
  return { exitCode: r.exitCode, text: `${r.stdout}\n${r.stderr}` };
}

describe('QEMU 7.2 under faults', () => {
  it('blkdebug I/O errors at iotest 026 events inside random sequences: no corruption, each sector as the sequence with or without the failed op', async () => {
    const arbitrary = fc.record({
      ops: fc.array(guestOp(), { minLength: 1, maxLength: 8 }),
      event: fc.constantFrom(...events),
      errno: fc.constantFrom(5, 28),
      once: fc.boolean(),
      clusterBits: fc.constantFrom(9, 12, 16),
      lazy: fc.boolean(),
    });
    const findings: string[] = [];
    const met = { errors: 0, contentJudged: 0 };
    await fc.assert(
      fc.asyncProperty(arbitrary, async (c) => {
        await inTempDir(async (dir) => {
          const o = options(c.clusterBits, c.lazy);
          const path = join(dir, 'img.qcow2');
          await create(path, o);
          const conf = join(dir, 'blkdebug.conf');
          await writeFile(conf, `[inject-error]\nevent = "${c.event}"\nerrno = "${c.errno}"\nonce = "${c.once ? 'on' : 'off'}"\n`);
          const io = await execa('qemu-io', [...c.ops.flatMap((op) => ['-c', formatOp(op)]), `blkdebug:${conf}:${path}`], { reject: false, all: true });
          const failed = failures(io.all ?? '', c.ops.length);
          const what = `${c.event} errno ${c.errno} once=${c.once} clusterBits ${c.clusterBits} lazy ${c.lazy}: ${c.ops.map(formatOp).join('; ')}`;
          const verdict = await check(path);
          // leaks are allowed after an error; a dirty lazy image is judged after the repair qemu-img runs
          const repaired = verdict.exitCode === 2 && c.lazy ? await check(path, '-r', 'all') : verdict;
          if (repaired.exitCode !== 0 && repaired.exitCode !== 3) findings.push(`${what}: qemu-img check exit ${repaired.exitCode}: ${repaired.text.split('\n').slice(0, 3).join(' | ')}`);
          const k = failed.indexOf(true);
          if (k >= 0) met.errors++;
          if (k < 0 || failed.lastIndexOf(true) !== k) return; // none failed, or several: only the image is judged
          met.contentJudged++;
          const withIt = run(o, c.ops).at(-1) as ModelState;
          const withoutIt = run(o, c.ops.filter((_, i) => i !== k)).at(-1) as ModelState;
          const wrong = disallowedAfterFault([withIt, withoutIt], await guestBytes(dir, path));
          if (wrong !== undefined) findings.push(`${what}: op ${k + 1} failed; ${wrong}`);
        });
      }),
      { seed: 15, numRuns: 30 },
    );
    expect(findings).toEqual([]);
    // not vacuous: errors were met, and the content after exactly one failed op was judged
    expect(met.errors).toBeGreaterThan(5);
    expect(met.contentJudged).toBeGreaterThan(3);
  }, 10 * 60 * 1000);

  it('SIGKILL after a drawn number of operations, lazy refcounts on and off (iotest 039): repaired clean, each sector as some state', async () => {
    const arbitrary = fc.record({
      ops: fc.array(guestOp(), { minLength: 1, maxLength: 8 }),
      killAfter: fc.nat(),
      clusterBits: fc.constantFrom(9, 12, 16),
      lazy: fc.boolean(),
    });
    const findings: string[] = [];
    let dirtyRepaired = 0;
    await fc.assert(
      fc.asyncProperty(arbitrary, async (c) => {
        await inTempDir(async (dir) => {
          const o = options(c.clusterBits, c.lazy);
          const path = join(dir, 'img.qcow2');
          await create(path, o);
          const n = c.killAfter % (c.ops.length + 1);
          const done = c.ops.slice(0, n);
          await execa('qemu-io', [...done.flatMap((op) => ['-c', formatOp(op)]), '-c', 'sigraise 9', path], { reject: false });
          const what = `kill after ${n} ops, clusterBits ${c.clusterBits} lazy ${c.lazy}: ${done.map(formatOp).join('; ')}`;
          if ((await check(path)).exitCode === 2) dirtyRepaired++;
          const repaired = await check(path, '-r', 'all');
          const again = await check(path);
          if (again.exitCode !== 0) findings.push(`${what}: after check -r all (exit ${repaired.exitCode}) check exits ${again.exitCode}: ${again.text.split('\n').slice(0, 3).join(' | ')}`);
          const wrong = disallowedAfterFault(run(o, done), await guestBytes(dir, path));
          if (wrong !== undefined) findings.push(`${what}: ${wrong}`);
        });
      }),
      { seed: 39, numRuns: 20 },
    );
    expect(findings).toEqual([]);
    // not vacuous: some kills left a dirty lazy image with stale refcounts that the repair fixed
    expect(dirtyRepaired).toBeGreaterThan(0);
  }, 10 * 60 * 1000);
});
