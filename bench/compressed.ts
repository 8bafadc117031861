// Compressed workloads of `npm run bench` (kept apart from the others so their
// files merge independently):
//   (4) convert -c raw→qcow2, zlib and zstd (engine `convert -c` vs
//       `qemu-img convert -c`), from compressible data;
//   (5) reading each compressed image back to raw (`convert -O raw`).
// Every output is checked with qemu-img compare (and check) before it counts.
import { execFileSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import type { Measurement } from './measure.js';
import { measure } from './measure.js';
import type { BenchRow } from './table.js';
import { MiB, xorshift32 } from './workloads.js';

const fillChunkBytes = 4 * MiB;
export const compressionTypes = ['zlib', 'zstd'] as const;

/**
 * Writes `bytes` that compress to about half (a fixed high nibble, pseudo-random
 * low nibble: 4 bits of entropy a byte) and contain no zero cluster.
 */
export async function writeCompressibleRaw(path: string, bytes: number, seed: number): Promise<void> {
  const next = xorshift32(seed);
  const file = await open(path, 'w');
  try {
    for (let at = 0; at < bytes; at += fillChunkBytes) {
      const chunk = new Uint8Array(Math.min(fillChunkBytes, bytes - at));
      for (let i = 0; i < chunk.length; i += 4) {
        const word = next();
        for (let k = 0; k < 4 && i + k < chunk.length; k++) chunk[i + k] = 0x60 | ((word >>> (8 * k)) & 0x0f);
      }
      await file.write(chunk, 0, chunk.length, at);
    }
  } finally {
    await file.close();
  }
}

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Rows (4) and (5) for `sizeMiB` of compressible data, in `dir`; `engine` runs the CLI. */
export async function compressedRows(dir: string, sizeMiB: number, seed: number, engine: (args: string[]) => Promise<Measurement>): Promise<BenchRow[]> {
  const raw = `${dir}/compressible-${sizeMiB}.raw`;
  await writeCompressibleRaw(raw, sizeMiB * MiB, seed);
  const rows: BenchRow[] = [];
  for (const type of compressionTypes) {
    const [ours, theirs] = [`${dir}/engine-${type}.qcow2`, `${dir}/qemu-${type}.qcow2`];
    const options = `compression_type=${type}`;
    const e = await engine(['convert', '-c', '-O', 'qcow2', '-o', options, raw, ours]);
    const q = await measure('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', options, raw, theirs]);
    qemuImg('compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, ours);
    qemuImg('check', '-q', ours);
    rows.push({ workload: `(4) convert -c ${sizeMiB} MiB raw→qcow2, ${type}`, bytes: sizeMiB * MiB, engine: e, qemu: q });
  }
  for (const type of compressionTypes) {
    const image = `${dir}/qemu-${type}.qcow2`;
    const [outOurs, outTheirs] = [`${dir}/engine-${type}-back.raw`, `${dir}/qemu-${type}-back.raw`];
    const e = await engine(['convert', '-O', 'raw', image, outOurs]);
    const q = await measure('qemu-img', ['convert', '-O', 'raw', image, outTheirs]);
    qemuImg('compare', '-q', '-f', 'raw', '-F', 'raw', raw, outOurs);
    rows.push({ workload: `(5) read ${sizeMiB} MiB ${type}-compressed back (convert qcow2→raw)`, bytes: sizeMiB * MiB, engine: e, qemu: q });
  }
  return rows;
}
