// A read-only open accepts every image QEMU opens and reports damage on the read
// that meets it, as QEMU does; a read-write open refuses the same images before
// anything is written, and says that it is stricter. Each image is measured
// against qemu-img convert (what QEMU reads) or qemu-io -r (where QEMU fails).
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Error, Qcow2Image } from '../../impl/index.js';
import { stricterThanQemu } from '../../impl/errors.js';
import { qemuRaw, withTempDir } from './qemu-helpers.js';

const KiB = 1024;

/** A 1 MiB image with 4 KiB clusters (one L2 table), 8 KiB written at 0, made by the engine. */
async function baseImage(): Promise<Uint8Array> {
  const file = new MemoryFile();
  const image = await Qcow2Image.create(file, { size: 1 << 20, clusterSize: 4 * KiB });
  await image.write(0, new Uint8Array(8 * KiB).fill(0xab));
  await image.close();
  return file.bytes();
}

const header = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const l1Offset = (bytes: Uint8Array) => Number(header(bytes).getBigUint64(40));

async function readAll(bytes: Uint8Array): Promise<Uint8Array> {
  const image = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true });
  const data = await image.read(0, image.virtualSize);
  await image.close();
  return data;
}

async function qemuReads(bytes: Uint8Array): Promise<Uint8Array> {
  return withTempDir(async (dir) => {
    const path = join(dir, 'x.qcow2');
    await writeFile(path, bytes);
    return qemuRaw(path);
  });
}

async function readWriteRefusal(bytes: Uint8Array): Promise<Qcow2Error> {
  const file = new MemoryFile(bytes);
  const error = await Qcow2Image.open(file).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(Qcow2Error);
  expect(Buffer.compare(file.bytes(), bytes)).toBe(0);
  return error as Qcow2Error;
}

describe('read-only open accepts what QEMU opens', () => {
  const damaged: [string, (bytes: Uint8Array) => void][] = [
    // fuzz --seed 1's first find: the header cluster read as the refcount table.
    ['refcount_table_offset = 0', (b) => header(b).setBigUint64(48, 0n)],
    ['L1 entry with reserved bits', (b) => header(b).setBigUint64(l1Offset(b), header(b).getBigUint64(l1Offset(b)) | 0x100n)],
    ['L1 entry pointing past 2^53', (b) => header(b).setBigUint64(l1Offset(b), 0x80_0000_0000_0000n)],
    ['L1 table past the end of the file', (b) => header(b).setBigUint64(40, BigInt(64 * 4 * KiB))],
    // qcow2_validate_table accepts aligned offsets up to INT64_MAX less the table: past 2^53, past any file.
    ['l1_table_offset = 2^57', (b) => header(b).setBigUint64(40, 1n << 57n)],
    ['refcount_table_offset = 2^56', (b) => header(b).setBigUint64(48, 1n << 56n)],
  ];

  it.each(damaged)('%s: reads what qemu-img convert reads; read-write open refuses and says why', async (_name, damage) => {
    const bytes = await baseImage();
    damage(bytes);
    expect(Buffer.compare(await readAll(bytes), await qemuReads(bytes))).toBe(0);
    expect((await readWriteRefusal(bytes)).message).toContain(stricterThanQemu);
  });

  it('an unaligned L2 offset fails the read that uses it, with QEMU\'s words, and nothing else', async () => {
    const bytes = await baseImage();
    const at = l1Offset(bytes);
    header(bytes).setBigUint64(at, header(bytes).getBigUint64(at) + 0x200n);
    const image = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true });
    const error = await image.read(0, 512).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'corrupt' });
    const message = (error as Error).message;
    expect(message).toMatch(/^L2 table offset 0x[0-9a-f]+ unaligned \(L1 index: 0\)$/);
    await image.close();
    await withTempDir(async (dir) => {
      const path = join(dir, 'x.qcow2');
      await writeFile(path, bytes);
      const qemu = await execa('qemu-io', ['-r', '-f', 'qcow2', '-c', 'read 0 512', path], { reject: false });
      expect(qemu.stdout).toContain('read failed: Input/output error');
      expect(qemu.stderr).toContain(`Image is corrupt: ${message}`);
    });
    await readWriteRefusal(bytes);
  });

  it('an empty backing file name is no backing file (QEMU opens it, read-write too)', async () => {
    const bytes = await baseImage();
    header(bytes).setBigUint64(8, 8n);
    header(bytes).setUint32(16, 0);
    expect(Buffer.compare(await readAll(bytes), await qemuReads(bytes))).toBe(0);
    const image = await Qcow2Image.open(new MemoryFile(bytes));
    await image.close();
  });

  it('the fuzz --seed 1 image in the corpus opens read-only and reads as QEMU reads it', async () => {
    const path = new URL('../../corpus/cases/ts-malformedImages-open-disagreement-ours-refuses-corrupt-qemu-opens-header-882ac44a26b1d011.qcow2', import.meta.url);
    const bytes = new Uint8Array(await readFile(path));
    expect(header(bytes).getBigUint64(48)).toBe(0n);
    expect(Buffer.compare(await readAll(bytes), await qemuReads(bytes))).toBe(0);
    expect((await readWriteRefusal(bytes)).message).toContain('refcount table entry 0 at byte 0: reserved bits set');
  });
});
