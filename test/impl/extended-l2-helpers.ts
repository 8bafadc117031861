// Running one qemu-io script on a QEMU-made and on our own extended-L2 image,
// and comparing the two images field by field (extended-l2.test.ts and its
// random-script property).
import { readFile, stat } from 'node:fs/promises';
import { expect } from 'vitest';
import { bufferReader, decodeImage } from '../../model/index.js';
import { runCli } from '../cli/run-cli.js';
import { expectClean, qemuImg, qemuImgJson, qemuIo } from '../cli/qemu.js';

export type Step = string | { readonly snapshot: string } | { readonly revert: string } | { readonly delete: string };

/** Every active L2 entry as kind, host, COPIED and bitmap, in guest order. */
/** Every active L2 entry as kind, host (unless `withHosts` is false), COPIED and bitmap, in guest order. */
async function l2View(file: string, withHosts = true): Promise<string[]> {
  const decoded = decodeImage(bufferReader(new Uint8Array(await readFile(file))));
  const out: string[] = [];
  decoded.active.l2Offsets.forEach((table, l1Index) => {
    if (table === 0) return;
    decoded.l2Tables.get(table)!.forEach((e, i) => {
      if (e.kind === 'unallocated' && (e.subclusters?.zero ?? 0) === 0) return;
      const bits = e.subclusters === undefined ? '' : ` alloc=${e.subclusters.alloc.toString(2)} zero=${e.subclusters.zero.toString(2)}`;
      const host = e.host === undefined || !withHosts ? '' : ` @${e.host}`;
      out.push(`L1[${l1Index}] entry ${i}: ${e.kind}${host}${e.copied ? ' COPIED' : ''}${bits}`);
    });
  });
  return out;
}

/**
 * Runs `steps` on a qemu-img image with qemu-io / qemu-img snapshot and on our
 * own `create` with our `io` / `snapshot`. Every command must succeed, or with
 * `allowFailures` fail in both (the same number of "failed" lines per script).
 * `backing` is added to both creates (`-b FILE -F FMT`).
 */
export async function runBoth(dir: string, options: string, size: string, steps: readonly Step[], allowFailures = false, backing: readonly string[] = []): Promise<{ ours: string; qemu: string }> {
  const qemu = `${dir}/qemu.qcow2`;
  const ours = `${dir}/ours.qcow2`;
  expect((await qemuImg('create', '-q', '-f', 'qcow2', ...backing, '-o', options, qemu, size)).exitCode).toBe(0);
  expect((await runCli(['create', '-q', ...backing, '-o', options, ours, size])).exitCode).toBe(0);
  // Consecutive io steps run in one qemu-io and one `io`, as one script.
  const batches: Step[][] = [];
  for (const step of steps) {
    const last = batches[batches.length - 1];
    if (typeof step === 'string' && last !== undefined && typeof last[0] === 'string') last.push(step);
    else batches.push([step]);
  }
  for (const batch of batches) {
    const step = batch[0]!;
    if (typeof step === 'string') {
      const script = batch as string[];
      const q = await qemuIo(qemu, ...script);
      const r = await runCli(['io', ours, ...script.flatMap((c) => ['-c', c])]);
      const failures = (text: string) => text.split('\n').filter((line) => / failed: /.test(line)).length;
      if (allowFailures) {
        expect(failures(r.stdout), script.join('; ')).toBe(failures(q.stdout));
      } else {
        expect(r.stderr, script.join('; ')).toBe('');
        expect(q.stdout, script.join('; ')).not.toMatch(/failed|error/i);
      }
    } else {
      const [flag, name] = 'snapshot' in step ? ['-c', step.snapshot] : 'revert' in step ? ['-a', step.revert] : ['-d', step.delete];
      expect((await qemuImg('snapshot', flag, name, qemu)).exitCode).toBe(0);
      expect((await runCli(['snapshot', flag, name, ours])).exitCode).toBe(0);
    }
  }
  return { ours, qemu };
}

interface MapEntry {
  readonly start: number;
  readonly length: number;
  readonly present: boolean;
  readonly zero: boolean;
  readonly data: boolean;
  readonly offset?: number;
}

/** qemu-img map's flags per `unit` bytes of the guest, with "has a host offset" instead of the offset. */
async function mapUnits(file: string, unit: number): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await qemuImgJson('map', file)) as MapEntry[]) {
    for (let at = e.start; at < e.start + e.length; at += unit) out.push(`${at}: ${e.present} ${e.zero} ${e.data} ${e.offset !== undefined}`);
  }
  return out;
}

/**
 * The same image as QEMU's up to the placement of host clusters (the engine
 * fills holes before it grows the file, where QEMU takes one contiguous run):
 * entries and bitmaps, map flags per subcluster, content, a clean check, and
 * our reads of QEMU's image.
 */
export async function expectEquivalentImage(ours: string, qemu: string, subclusterSize: number): Promise<void> {
  expect(await l2View(ours, false)).toEqual(await l2View(qemu, false));
  expect(await mapUnits(ours, subclusterSize)).toEqual(await mapUnits(qemu, subclusterSize));
  await expectSameContent(ours, qemu);
}

/** Exactly QEMU's image: also the host offsets, qemu-img map as printed, and the file length. */
export async function expectSameImage(ours: string, qemu: string): Promise<void> {
  expect(await l2View(ours)).toEqual(await l2View(qemu));
  expect(await qemuImgJson('map', ours)).toEqual(await qemuImgJson('map', qemu));
  expect((await stat(ours)).size).toBe((await stat(qemu)).size);
  await expectSameContent(ours, qemu);
}

async function expectSameContent(ours: string, qemu: string): Promise<void> {
  expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'qcow2', ours, qemu)).stdout).toBe('Images are identical.');
  await expectClean(ours);
  // Our read path on QEMU's image: every subcluster as qemu-img reads it.
  expect((await runCli(['convert', '-O', 'raw', qemu, `${ours}.raw`])).exitCode).toBe(0);
  expect((await qemuImg('compare', '-f', 'qcow2', '-F', 'raw', qemu, `${ours}.raw`)).stdout).toBe('Images are identical.');
}
