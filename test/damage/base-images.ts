// The intact images every damage starts from, all written by QEMU itself
// (qemu-img create, qemu-io writes, qemu-img snapshot and bitmap). Built once per test file.
// Each mixes shared and private L2 tables and data clusters, so COPIED damage has
// both kinds of target.
import { readFile } from 'node:fs/promises';
import { dir } from 'tmp-promise';
import { afterAll, beforeAll } from 'vitest';
import { join } from 'node:path';
import { openQemuIo, qemuImgBitmap, qemuImgCreate, qemuImgSnapshot, type QemuBitmapAction, type QemuCreateConstraints } from '../../oracle/index.js';

export type BaseName =
  | 'v3-c512-r8'
  | 'v2-c4k'
  | 'v3-c64k'
  | 'v3-c4k-r4-lazy'
  | 'v3-c4k-r2-compressed'
  | 'v3-c4k-r1'
  | 'v3-c512-r64'
  | 'v3-c4k-bitmaps'
  | 'v3-c16k-extl2';

export const baseNames: readonly BaseName[] = [
  'v3-c512-r8',
  'v2-c4k',
  'v3-c64k',
  'v3-c4k-r4-lazy',
  'v3-c4k-r2-compressed',
  'v3-c4k-r1',
  'v3-c512-r64',
  'v3-c4k-bitmaps',
  'v3-c16k-extl2',
];

type Step =
  | { readonly io: string }
  | { readonly snapshot: string }
  | { readonly bitmap: QemuBitmapAction; readonly name: string; readonly granularity?: number };

interface BaseRecipe {
  readonly create: QemuCreateConstraints;
  readonly steps: readonly Step[];
}

const KiB = 1024;

const recipes: Readonly<Record<BaseName, BaseRecipe>> = {
  // 512 B clusters: one L1 entry covers 32 KiB, so a small disk has several L2 tables.
  // After the snapshot, L1[0] and L1[1] are privatized (a private and a shared data
  // cluster each), L1[2] stays shared with the snapshot.
  'v3-c512-r8': {
    create: { size: 256 * KiB, clusterSize: 512, refcountBits: 8, compat: '1.1' },
    steps: [
      { io: 'write -q -P 0x11 0 1024' },
      { io: 'write -q -P 0x22 32768 1024' },
      { io: 'write -q -P 0x33 65536 512' },
      { snapshot: 's1' },
      { io: 'write -q -P 0x44 0 512' },
      { io: 'write -q -P 0x55 33280 512' },
    ],
  },
  'v2-c4k': {
    create: { size: 1024 * KiB, clusterSize: 4096, compat: '0.10' },
    steps: [{ io: 'write -q -P 0x11 0 8192' }, { snapshot: 's1' }, { io: 'write -q -P 0x22 0 4096' }],
  },
  'v3-c64k': {
    create: { size: 1024 * KiB, clusterSize: 64 * KiB },
    steps: [{ io: 'write -q -P 0x11 0 196608' }, { snapshot: 's1' }, { io: 'write -q -P 0x22 131072 4096' }],
  },
  'v3-c4k-r4-lazy': {
    create: { size: 1024 * KiB, clusterSize: 4096, refcountBits: 4, lazyRefcounts: true },
    steps: [{ io: 'write -q -P 0x11 0 12288' }],
  },
  // One qemu-io request packs both streams into one host cluster (refcount 2);
  // separate sessions would not (the free-byte offset is not kept on disk).
  'v3-c4k-r2-compressed': {
    create: { size: 1024 * KiB, clusterSize: 4096, refcountBits: 2 },
    steps: [{ io: 'write -q -c -P 0x11 0 8192' }, { io: 'write -q -P 0x33 8192 4096' }],
  },
  // The extreme refcount widths: 1 bit (LSB-first packing inside each byte) and 64 bits.
  'v3-c4k-r1': {
    create: { size: 1024 * KiB, clusterSize: 4096, refcountBits: 1 },
    steps: [{ io: 'write -q -P 0x11 0 16384' }],
  },
  'v3-c512-r64': {
    create: { size: 64 * KiB, clusterSize: 512, refcountBits: 64 },
    steps: [{ io: 'write -q -P 0x11 0 2048' }, { io: 'write -q -P 0x22 40960 512' }],
  },
  // Two persistent bitmaps, each with one data cluster (qemu-io's writes mark the
  // enabled ones dirty): bm0 enabled ("auto"), bm1 with 16 KiB granularity and
  // disabled after the first write.
  'v3-c4k-bitmaps': {
    create: { size: 1024 * KiB, clusterSize: 4096 },
    steps: [
      { bitmap: 'add', name: 'bm0' },
      { bitmap: 'add', name: 'bm1', granularity: 16 * KiB },
      { io: 'write -q -P 0x11 0 12288' },
      { bitmap: 'disable', name: 'bm1' },
      { snapshot: 's1' },
      { io: 'write -q -P 0x22 4096 4096' },
    ],
  },
  // Extended L2 entries, 16 KiB clusters (512-byte subclusters): partial and
  // unaligned subcluster writes, zeroed subclusters of an unallocated cluster, a
  // compressed cluster, a whole cluster, then a snapshot and a copy-on-write of
  // cluster 0 (so both shared and private data clusters).
  'v3-c16k-extl2': {
    create: { size: 1024 * KiB, clusterSize: 16 * KiB, extraOptions: { extended_l2: true } },
    steps: [
      { io: 'write -q -P 0x11 0 1024' },
      { io: 'write -q -P 0x22 20480 600' },
      { io: 'write -q -z 40960 2048' },
      { io: 'write -q -c -P 0x33 65536 16384' },
      { io: 'write -q -P 0x55 114688 16384' },
      { snapshot: 's1' },
      { io: 'write -q -P 0x44 4096 512' },
    ],
  },
};

async function buildBase(dir: string, name: BaseName): Promise<Uint8Array> {
  const path = join(dir, `${name}.qcow2`);
  const recipe = recipes[name];
  await qemuImgCreate(path, recipe.create);
  for (const step of recipe.steps) {
    if ('snapshot' in step) {
      await qemuImgSnapshot(path, 'create', step.snapshot);
      continue;
    }
    if ('bitmap' in step) {
      await qemuImgBitmap(path, step.bitmap, step.name, step.granularity === undefined ? {} : { granularity: step.granularity });
      continue;
    }
    const session = await openQemuIo(path);
    try {
      const response = await session.run(step.io);
      if (response.trim() !== '') throw new Error(`${name}: ${step.io}: ${response}`);
    } finally {
      await session.close();
    }
  }
  return new Uint8Array(await readFile(path));
}

/** The bytes of every base image (or of those named), built in `dir`. */
export async function buildBases(dir: string, names: readonly BaseName[] = baseNames): Promise<ReadonlyMap<BaseName, Uint8Array>> {
  const entries = await Promise.all(names.map(async (name) => [name, await buildBase(dir, name)] as const));
  return new Map(entries);
}

/**
 * The base images for the calling test file: built once before its tests
 * (beforeAll) in a temporary directory removed after them (afterAll). Call at
 * the top level of a test file; the getter answers once the tests run.
 */
export function basesForThisFile(): () => ReadonlyMap<BaseName, Uint8Array> {
  let bases: ReadonlyMap<BaseName, Uint8Array> | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const tmp = await dir({ unsafeCleanup: true });
    cleanup = () => tmp.cleanup();
    bases = await buildBases(tmp.path);
  });
  afterAll(() => cleanup?.());
  return () => {
    if (bases === undefined) throw new Error('the base images are built in beforeAll: read them inside a test');
    return bases;
  };
}
