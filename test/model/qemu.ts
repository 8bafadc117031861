// Test helper: drive real qemu-img / qemu-io 7.2 through the same ops as the model.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { dir } from 'tmp-promise';
import type { ImageOptions, Op } from '../../model/index.js';

const hex = (n: number) => `0x${n.toString(16)}`;

export async function withTempDir<T>(fn: (path: string) => Promise<T>): Promise<T> {
  const d = await dir({ unsafeCleanup: true });
  try {
    return await fn(d.path);
  } finally {
    await d.cleanup();
  }
}

export async function qemuCreate(file: string, o: ImageOptions): Promise<void> {
  const opts = [
    `cluster_size=${2 ** o.clusterBits}`,
    `compat=${o.version === 2 ? '0.10' : '1.1'}`,
    ...(o.version === 3 ? [`refcount_bits=${o.refcountBits}`, `lazy_refcounts=${o.lazyRefcounts ? 'on' : 'off'}`] : []),
    ...(o.extendedL2 === true ? ['extended_l2=on'] : []),
  ];
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', opts.join(','), file, String(o.virtualSize)]);
}

/** Applies ops with qemu-io (guest ops batched per run) and qemu-img (snapshots). Returns whether each op succeeded. */
export async function qemuApply(file: string, ops: readonly Op[]): Promise<boolean[]> {
  const results: boolean[] = [];
  for (const op of ops) {
    const io = (cmd: string) => execa('qemu-io', ['-f', 'qcow2', '-c', cmd, file], { reject: false });
    let r: { exitCode?: number; stdout: string; stderr: string };
    switch (op.kind) {
      case 'write':
        if (op.seed !== undefined) throw new Error('seeded writes are not expressible with qemu-io -P');
        r = await io(`write -P ${op.pattern & 0xff} ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'writeCompressed':
        if (op.seed !== undefined) throw new Error('seeded compressed writes are not expressible with qemu-io -P');
        r = await io(`write -c -P ${op.pattern & 0xff} ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'writeZeroes':
        r = await io(`write -z${op.unmap ? ' -u' : ''} ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'discard':
        r = await io(`discard ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'resize':
        r = await io(`truncate ${op.size}`);
        break;
      case 'snapshotCreate':
      case 'snapshotRevert':
      case 'snapshotDelete': {
        const flag = { snapshotCreate: '-c', snapshotRevert: '-a', snapshotDelete: '-d' }[op.kind];
        r = await execa('qemu-img', ['snapshot', flag, op.name, file], { reject: false });
        break;
      }
      case 'flush':
      case 'reopen':
        r = { exitCode: 0, stdout: '', stderr: '' };
        break;
      case 'createOverlay':
      case 'rebase':
      case 'commit':
        throw new Error(`this helper runs one image file, not a chain: ${op.kind}`);
    }
    results.push(r.exitCode === 0 && !/failed|error/i.test(r.stdout + r.stderr));
  }
  return results;
}

export async function qemuCheckJson(file: string): Promise<{ exitCode: number; json: Record<string, unknown> }> {
  const r = await execa('qemu-img', ['check', '--output=json', file], { reject: false });
  return { exitCode: r.exitCode ?? -1, json: JSON.parse(r.stdout) as Record<string, unknown> };
}

export const imageBytes = (file: string) => readFile(file).then((b) => new Uint8Array(b));
export { join };
