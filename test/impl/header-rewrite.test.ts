// Header rewrites keep what QEMU 7.2 keeps. QEMU and the engine run the same
// operation on copies of one QEMU-made image, and the whole header cluster
// (struct, unknown header fields, extensions with the feature table, bitmaps and
// unknown ones, backing name area) must come out byte for byte the same. The
// images cover every creation option the engine supports, and the header
// oddities a rewrite must carry over: unknown extensions, unknown header fields,
// header_length 104, an ignored bitmaps extension, unknown autoclear bits, a
// dirty lazy-refcounts image.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir, type DirectoryResult } from 'tmp-promise';
import { Qcow2Image } from '../../impl/index.js';
import { qemuImg, qemuIo } from '../cli/qemu.js';

let tmp: DirectoryResult;
beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
});
afterAll(() => tmp.cleanup());

const MiB = 1024 * 1024;
const fixedClock = () => ({ sec: 0, nsec: 0 });

interface Operation {
  readonly qemu: (path: string) => Promise<{ exitCode: number }>;
  readonly engine: (image: Qcow2Image) => Promise<void>;
}

/** Each rewrites the header in both programs: in place (fields) or whole (at open, on clearing the dirty bit). */
const operations: Readonly<Record<string, Operation>> = {
  'snapshot -c': { qemu: (p) => qemuImg('snapshot', '-c', 's1', p), engine: (i) => i.snapshots.create('s1') },
  'snapshot -d': { qemu: (p) => qemuImg('snapshot', '-d', 's0', p), engine: (i) => i.snapshots.delete('s0') },
  'snapshot -a': { qemu: (p) => qemuImg('snapshot', '-a', 's0', p), engine: (i) => i.snapshots.revert('s0') },
  'resize to 64 MiB': { qemu: (p) => qemuImg('resize', '-f', 'qcow2', p, String(64 * MiB)), engine: (i) => i.resize(64 * MiB) },
  'resize to 1 MiB': { qemu: (p) => qemuImg('resize', '--shrink', '-f', 'qcow2', p, String(MiB)), engine: (i) => i.resize(MiB) },
  'write and close': { qemu: (p) => qemuIo(p, 'write -P 1 4M 64k'), engine: (i) => i.write(4 * MiB, new Uint8Array(65536).fill(1)) },
};

/** qemu-img create -o options; snapshots are left out where QEMU cannot make one (1-bit refcounts). */
const creations: readonly string[] = [
  'compat=0.10,cluster_size=4096',
  'compat=1.1,cluster_size=512',
  'compat=1.1,cluster_size=65536',
  'compat=1.1,cluster_size=2M',
  'compat=1.1,cluster_size=4096,refcount_bits=1',
  'compat=1.1,refcount_bits=64',
  'compat=1.1,cluster_size=4096,lazy_refcounts=on',
];

const u32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at);
const setU32 = (b: Uint8Array, at: number, v: number) => new DataView(b.buffer, b.byteOffset).setUint32(at, v);
const setU64 = (b: Uint8Array, at: number, v: bigint) => new DataView(b.buffer, b.byteOffset).setBigUint64(at, v);

/** Puts 8 unknown header bytes and two unknown extensions in front of QEMU's extensions. */
function unknownExtensionsAndFields(image: Uint8Array): void {
  const headerLength = u32(image, 100);
  const cs = 2 ** u32(image, 20);
  const rest = image.slice(headerLength, cs);
  image.fill(0, headerLength, cs);
  image.set([0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7], headerLength);
  setU32(image, 100, headerLength + 8);
  let at = headerLength + 8;
  for (const [type, text] of [[0x11111111, 'first'], [0x22222222, 'second ext!']] as const) {
    setU32(image, at, type);
    setU32(image, at + 4, text.length);
    image.set(new TextEncoder().encode(text), at + 8);
    at += 8 + Math.ceil(text.length / 8) * 8;
  }
  image.set(rest.subarray(0, cs - at), at);
}

/** Header oddities on a version 3 image, applied to QEMU's bytes. */
const variants: Readonly<Record<string, (path: string) => Promise<void>>> = {
  'unknown extensions and header fields': (p) => poke(p, unknownExtensionsAndFields),
  // Clearing the unknown bit rebuilds cluster 0 at open, which reverses the unknown extensions in QEMU.
  'unknown extensions, rebuilt at open': (p) =>
    poke(p, (b) => {
      unknownExtensionsAndFields(b);
      setU64(b, 88, 1n << 5n);
    }),
  'header_length 104': (p) => poke(p, (b) => setU32(b, 100, 104)),
  'unknown autoclear bit 5': (p) => poke(p, (b) => setU64(b, 88, 1n << 5n)),
  'bitmaps extension ignored (autoclear bit 0 clear)': async (p) => {
    expect((await qemuImg('bitmap', '--add', p, 'bm0')).exitCode).toBe(0);
    await poke(p, (b) => setU64(b, 88, 0n));
  },
  'dirty lazy-refcounts image': (p) => poke(p, (b) => setU64(b, 72, 1n)),
};

async function poke(path: string, change: (bytes: Uint8Array) => void): Promise<void> {
  const bytes = new Uint8Array(await readFile(path));
  change(bytes);
  await writeFile(path, bytes);
}

async function baseImage(name: string, options: string, variant?: (path: string) => Promise<void>): Promise<string> {
  const path = join(tmp.path, `${name}.qcow2`);
  expect((await qemuImg('create', '-q', '-f', 'qcow2', '-o', options, path, String(8 * MiB))).exitCode).toBe(0);
  expect((await qemuIo(path, 'write -P 7 0 128k')).exitCode).toBe(0);
  if (!options.includes('refcount_bits=1,') && !options.endsWith('refcount_bits=1')) {
    expect((await qemuImg('snapshot', '-c', 's0', path)).exitCode).toBe(0);
  }
  if (variant !== undefined) await variant(path);
  return path;
}

/** The differing byte ranges of the two header clusters, as `start-end` strings. */
function differences(qemu: Uint8Array, ours: Uint8Array): string[] {
  const cs = 2 ** u32(qemu, 20);
  const ranges: [number, number][] = [];
  for (let i = 0; i < cs; i++) {
    if (qemu[i] === ours[i]) continue;
    const last = ranges.at(-1);
    if (last !== undefined && last[1] === i - 1) last[1] = i;
    else ranges.push([i, i]);
  }
  return ranges.map(([a, b]) => `${a}-${b}: qemu ${Buffer.from(qemu.subarray(a, b + 1)).toString('hex')}, engine ${Buffer.from(ours.subarray(a, b + 1)).toString('hex')}`);
}

/** Runs the operation on two copies: both succeed or both refuse, and they leave the same header cluster. */
async function compareAfter(base: string, operation: Operation): Promise<{ readonly refused: boolean; readonly differences: string[] }> {
  const qemuPath = `${base}.qemu`;
  const ourPath = `${base}.engine`;
  await copyFile(base, qemuPath);
  await copyFile(base, ourPath);
  const qemuOk = (await operation.qemu(qemuPath)).exitCode === 0;
  const image = await Qcow2Image.openFile(ourPath, { clock: fixedClock });
  let ourOk = true;
  try {
    await operation.engine(image);
  } catch {
    ourOk = false;
  } finally {
    await image.close();
  }
  expect(ourOk, 'the engine succeeds exactly when QEMU does').toBe(qemuOk);
  return { refused: !qemuOk, differences: differences(new Uint8Array(await readFile(qemuPath)), new Uint8Array(await readFile(ourPath))) };
}

const matrix = creations.flatMap((options) => Object.keys(operations).map((op) => [options, op] as const));

describe('a header rewrite leaves cluster 0 as QEMU 7.2 leaves it', () => {
  it.each(matrix)('%s: %s', async (options, op) => {
    const operation = operations[op];
    if (operation === undefined) throw new Error(op);
    const base = await baseImage(`${options}-${op}`.replace(/[^a-z0-9]+/gi, '_'), options);
    const { refused, differences: found } = await compareAfter(base, operation);
    // Both refuse to resize a v2 image with snapshots, and any snapshot with
    // 1-bit refcounts (overflow, or no snapshot s0 to delete or apply).
    expect(refused).toBe(/compat=0\.10.*resize|refcount_bits=1.*snapshot/.test(`${options} ${op}`));
    expect(found).toEqual([]);
  });

  const oddities = Object.keys(variants).flatMap((variant) =>
    ['snapshot -c', 'resize to 64 MiB', 'write and close'].map((op) => [variant, op] as const),
  );
  it.each(oddities)('%s: %s', async (variant, op) => {
    const operation = operations[op];
    const change = variants[variant];
    if (operation === undefined || change === undefined) throw new Error(`${variant} ${op}`);
    const options = variant.startsWith('dirty') ? 'compat=1.1,cluster_size=4096,lazy_refcounts=on' : 'compat=1.1,cluster_size=65536';
    const base = await baseImage(`${variant}-${op}`.replace(/[^a-z0-9]+/gi, '_'), options, change);
    expect(await compareAfter(base, operation)).toEqual({ refused: false, differences: [] });
  });

  it('a large L1 growth with new refcount blocks (512 B clusters to 2 GiB) leaves the same header', async () => {
    // The new 512 KiB L1 needs new refcount blocks: QEMU puts the L1 at the first
    // free cluster and the blocks right after it, and so does the engine.
    const base = await baseImage('l1-placement', 'compat=1.1,cluster_size=512');
    const result = await compareAfter(base, {
      qemu: (p) => qemuImg('resize', '-f', 'qcow2', p, String(2048 * MiB)),
      engine: (i) => i.resize(2048 * MiB),
    });
    expect(result).toEqual({ refused: false, differences: [] });
  });
});
