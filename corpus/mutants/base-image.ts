// Valid base images for the malformed-image fuzzer, built by QEMU itself
// (qemu-img create, qemu-io writes, qemu-img snapshot) from a spec drawn from
// the seed — so the mutants start from what real images look like, and a case
// file's spec rebuilds the same image. (Snapshot dates differ between builds;
// replays use the image saved with the case when there is one.)
import fc from 'fast-check';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatOp, type ImageOptions, type Op } from '../../model/ops.js';
import { createConstraints, qemuImgCreate, qemuImgSnapshot, withTempDir } from '../../oracle/index.js';
import { runTool, stripToolPrefix } from '../../oracle/run.js';
import { canonicalJson } from '../case/identity.js';
import type { BaseImageSpec } from '../case/types.js';

const clusterBitsChoices = [9, 9, 9, 12, 16] as const;
const refcountBitsChoices = [1, 2, 4, 8, 16, 16, 32, 64] as const;
const virtualSizeChoices = [65536, 65536 * 3 + 512, 1 << 20] as const;

const optionsArb: fc.Arbitrary<ImageOptions> = fc
  .record({
    version: fc.constantFrom(2 as const, 3 as const, 3 as const),
    clusterBits: fc.constantFrom(...clusterBitsChoices),
    refcountBits: fc.constantFrom(...refcountBitsChoices),
    virtualSize: fc.constantFrom(...virtualSizeChoices),
  })
  .map((o) => ({ ...o, refcountBits: o.version === 2 ? 16 : o.refcountBits, lazyRefcounts: false }));

/** A few guest ops: enough to give the image L2 tables, data, zero clusters and maybe snapshots. */
function opsArb(options: ImageOptions): fc.Arbitrary<Op[]> {
  const cs = 2 ** options.clusterBits;
  const clusters = Math.floor(options.virtualSize / cs);
  const range = fc
    .record({ start: fc.nat({ max: Math.max(0, clusters - 1) }), count: fc.integer({ min: 1, max: 4 }) })
    .map(({ start, count }) => ({ offset: start * cs, length: Math.min(count, clusters - start) * cs }));
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.tuple(range, fc.integer({ min: 1, max: 255 })).map(([r, pattern]) => ({ kind: 'write' as const, ...r, pattern })) },
    { weight: options.version === 3 ? 1 : 0, arbitrary: fc.tuple(range, fc.boolean()).map(([r, unmap]) => ({ kind: 'writeZeroes' as const, ...r, unmap })) },
    { weight: 1, arbitrary: range.map((r) => ({ kind: 'discard' as const, ...r })) },
  );
  // Snapshots need room for refcount 2+ (1-bit refcounts overflow: QEMU refuses and leaks).
  const snapshots = options.refcountBits >= 2 ? fc.nat({ max: 2 }) : fc.constant(0);
  return fc.tuple(fc.array(op, { minLength: 1, maxLength: 4 }), snapshots, fc.array(op, { maxLength: 2 })).map(([before, n, after]) => [
    ...before,
    ...Array.from({ length: n }, (_, i): Op => ({ kind: 'snapshotCreate', name: `snap${i + 1}` })),
    ...(n > 0 ? after : []),
  ]);
}

export const baseImageSpecArb: fc.Arbitrary<BaseImageSpec> = optionsArb.chain((options) => opsArb(options).map((ops) => ({ options, ops })));

/** QEMU could not build a base image from its spec (a spec the arbitrary should never draw). */
export class BaseImageError extends Error {
  override readonly name = 'BaseImageError';
}

/** Builds the base image with QEMU and returns its bytes. */
export async function buildBaseImage(spec: BaseImageSpec): Promise<Uint8Array> {
  return withTempDir(async (dir) => {
    const path = join(dir, 'base.qcow2');
    await qemuImgCreate(path, createConstraints(spec.options));
    let pending: string[] = [];
    const flushIo = async () => {
      if (pending.length === 0) return;
      const args = ['-f', 'qcow2', ...pending.flatMap((c) => ['-c', c]), path];
      pending = [];
      const run = await runTool('qemu-io', args);
      // qemu-io exits 0 even when a command fails; its errors go to stdout/stderr as "… failed: …".
      if (run.exitCode !== 0 || /failed:/.test(run.stdout + run.stderr)) {
        throw new BaseImageError(`qemu-io ${args.join(' ')} exited ${run.exitCode}: ${stripToolPrefix('qemu-io', run.stdout + run.stderr)}`);
      }
    };
    for (const op of spec.ops) {
      switch (op.kind) {
        case 'write':
        case 'writeCompressed':
        case 'writeZeroes':
        case 'discard':
        case 'flush':
          pending.push(formatOp(op));
          break;
        case 'snapshotCreate':
        case 'snapshotDelete':
        case 'snapshotRevert':
          await flushIo();
          await qemuImgSnapshot(path, op.kind === 'snapshotCreate' ? 'create' : op.kind === 'snapshotDelete' ? 'delete' : 'apply', op.name);
          break;
        case 'resize':
          pending.push(formatOp(op));
          break;
        case 'reopen':
          await flushIo();
          break;
        case 'createOverlay':
        case 'rebase':
        case 'commit':
          throw new Error(`base images are single files: ${formatOp(op)} builds a backing chain`);
        default: {
          const never: never = op;
          throw new Error(`unhandled op ${JSON.stringify(never)}`);
        }
      }
    }
    await flushIo();
    return new Uint8Array(await readFile(path));
  });
}

/** Base images are built once per campaign and spec (a handful of specs recur). */
export class BaseImageCache {
  private readonly images = new Map<string, Promise<Uint8Array>>();

  get(spec: BaseImageSpec): Promise<Uint8Array> {
    const key = canonicalJson(spec);
    let image = this.images.get(key);
    if (image === undefined) {
      image = buildBaseImage(spec);
      this.images.set(key, image);
      image.catch(() => this.images.delete(key));
    }
    return image;
  }
}
