// The engine's open against QEMU's on images with persistent bitmaps, damaged or
// not (the bitmap kinds of the damage catalogue): a read-only open succeeds
// exactly when `qemu-img info` opens the image and then lists the same bitmaps,
// and a read-write open of an image with bitmaps is refused without a write
// unless dropBitmaps is given.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dir, type DirectoryResult } from 'tmp-promise';
import { MemoryFile, Qcow2BitmapsError, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { qemuImgCheckBytes } from '../../oracle/index.js';
import { qemuImg } from '../cli/qemu.js';
import { damaged } from '../damage/apply.js';
import { buildBases, type BaseName } from '../damage/base-images.js';
import { damageKinds } from '../damage/kinds/index.js';

let tmp: DirectoryResult;
let bases: ReadonlyMap<BaseName, Uint8Array>;

beforeAll(async () => {
  tmp = await dir({ unsafeCleanup: true });
  bases = await buildBases(tmp.path, ['v3-c4k-bitmaps']);
});
afterAll(() => tmp.cleanup());

const bitmapKinds = damageKinds.filter((kind) => kind.base === 'v3-c4k-bitmaps');

interface QemuBitmap {
  readonly name: string;
  readonly granularity: number;
  readonly flags: readonly string[];
}

/** `qemu-img info`'s bitmaps, or undefined when it cannot open the image. */
async function qemuBitmaps(image: Uint8Array, name: string): Promise<readonly QemuBitmap[] | undefined> {
  const path = join(tmp.path, name);
  await writeFile(path, image);
  const run = await qemuImg('info', '--output=json', '-f', 'qcow2', path);
  if (run.exitCode !== 0) return undefined;
  const info = JSON.parse(run.stdout) as { 'format-specific': { data: { bitmaps?: QemuBitmap[] } } };
  return info['format-specific'].data.bitmaps ?? [];
}

async function ourBitmaps(image: Uint8Array): Promise<readonly QemuBitmap[] | Qcow2Error> {
  try {
    const engine = await Qcow2Image.open(new MemoryFile(image), { readOnly: true });
    const { bitmaps } = await engine.info();
    await engine.close();
    return bitmaps.map((bm) => ({ flags: [...(bm.inUse ? ['in-use'] : []), ...(bm.auto ? ['auto'] : [])], name: bm.name, granularity: bm.granularity }));
  } catch (error) {
    if (error instanceof Qcow2Error) return error;
    throw error;
  }
}

describe('engine open on images with bitmaps, against qemu-img info', () => {
  it('has bitmap kinds to judge', () => {
    expect(bitmapKinds.length).toBeGreaterThanOrEqual(20);
  });

  it.each(bitmapKinds.map((kind) => [kind.name, kind] as const))('%s: read-only open as QEMU', async (_name, kind) => {
    const image = damaged(kind, bases);
    const theirs = await qemuBitmaps(image, `${kind.name}.qcow2`);
    const ours = await ourBitmaps(image);
    if (theirs === undefined) {
      expect(ours, 'qemu-img info cannot open it').toBeInstanceOf(Qcow2Error);
      return;
    }
    expect(ours).toEqual(theirs);
  });

  it('the intact image lists both bitmaps, and a read-write open is refused with their names and no write', async () => {
    const base = bases.get('v3-c4k-bitmaps') ?? new Uint8Array();
    expect(await ourBitmaps(base)).toEqual([
      { flags: ['auto'], name: 'bm0', granularity: 4096 },
      { flags: [], name: 'bm1', granularity: 16384 },
    ]);
    const file = new MemoryFile(base);
    const refusal = await Qcow2Image.open(file, {}).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(Qcow2BitmapsError);
    expect((refusal as Qcow2BitmapsError).names).toEqual(['bm0', 'bm1']);
    expect((refusal as Qcow2BitmapsError).code).toBe('unsupported');
    expect(file.bytes()).toEqual(base);
  });

  it('dropBitmaps clears autoclear bit 0 and the extension; QEMU then counts the five bitmap clusters as leaks', async () => {
    const base = bases.get('v3-c4k-bitmaps') ?? new Uint8Array();
    const file = new MemoryFile(base);
    const engine = await Qcow2Image.open(file, { dropBitmaps: true });
    expect((await engine.info()).bitmaps).toEqual([]);
    await engine.write(0, new Uint8Array(4096).fill(0x33));
    await engine.close();
    const bytes = file.bytes();
    expect(new DataView(bytes.buffer).getBigUint64(88)).toBe(0n); // autoclear_features
    expect(await qemuBitmaps(bytes, 'dropped.qcow2')).toEqual([]);
    const check = await qemuImgCheckBytes(bytes, { name: 'dropped.qcow2' });
    expect({ verdict: check.verdict, corruptions: check.corruptions, leaks: check.leaks }).toEqual({ verdict: 'leaks', corruptions: 0, leaks: 5 });
    expect(check.messages.join('\n')).not.toContain('lacking bitmap support');
  });
});
