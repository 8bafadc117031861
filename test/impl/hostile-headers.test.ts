// Damaged and hostile headers are refused with a typed error naming the field,
// before anything is allocated from them, and the file is never written.
import { describe, expect, it } from 'vitest';
import { MemoryFile, Qcow2Error, Qcow2FormatError, Qcow2Image } from '../../impl/index.js';
import { bufferReader, checkImage } from '../../model/index.js';

async function baseImage(): Promise<Uint8Array> {
  const file = new MemoryFile();
  const image = await Qcow2Image.create(file, { size: 1 << 20, clusterSize: 65536 });
  await image.write(0, new Uint8Array(1000).fill(7));
  await image.snapshots.create('s');
  await image.close();
  return file.bytes();
}

type Poke = (view: DataView) => void;
const u32 = (at: number, v: number): Poke => (view) => view.setUint32(at, v);
const u64 = (at: number, v: bigint): Poke => (view) => view.setBigUint64(at, v);

const cases: [string, Poke, string, string | undefined][] = [
  // name, damage, expected code, expected field (format errors)
  ['bad magic', u32(0, 0x514649fa), 'format', 'magic'],
  ['version 4', u32(4, 4), 'format', 'version'],
  ['cluster_bits 8', u32(20, 8), 'format', 'cluster_bits'],
  ['cluster_bits 22', u32(20, 22), 'format', 'cluster_bits'],
  ['size past 2^53', u64(24, 1n << 60n), 'format', 'size'],
  ['l1_size absurdly large', u32(36, 0x10000000), 'format', 'l1_size'],
  ['l1_size too small for the size', u32(36, 0), 'format', 'l1_size'],
  ['l1_table_offset unaligned', u64(40, 0x30200n), 'format', 'l1_table_offset'],
  ['l1_table_offset past 2^56', u64(40, 1n << 57n), 'format', 'l1_table_offset'],
  ['l1_table_offset far past the file end', u64(40, 1n << 40n), 'format', 'l1_table_offset'],
  ['refcount_table_offset unaligned', u64(48, 0x10008n), 'format', 'refcount_table_offset'],
  ['refcount_table_clusters absurdly large', u32(56, 0x100000), 'format', 'refcount_table_clusters'],
  ['refcount_table_clusters 0', u32(56, 0), 'format', 'refcount_table_clusters'],
  ['nb_snapshots over 65536', u32(60, 70000), 'format', 'nb_snapshots'],
  ['snapshots_offset unaligned', u64(64, 0x50001n), 'format', 'snapshots_offset'],
  ['refcount_order 7', u32(96, 7), 'format', 'refcount_order'],
  ['header_length over the cluster size', u32(100, 65537), 'format', 'header_length'],
  ['header_length under 104', u32(100, 100), 'format', 'header_length'],
  ['extension length running past the cluster', u32(112 + 4, 70000), 'format', 'header extension length'],
  ['unknown incompatible bit 5', u64(72, 1n << 5n), 'unsupported', undefined],
  ['extended L2 (incompatible bit 4) with 8 KiB clusters', (v) => { v.setBigUint64(72, 1n << 4n); v.setUint32(20, 13); }, 'format', 'cluster_bits'],
  ['external data file (incompatible bit 2)', u64(72, 1n << 2n), 'unsupported', undefined],
  ['encryption', u32(32, 1), 'unsupported', undefined],
  ['backing file name too long', (v) => { v.setBigUint64(8, 512n); v.setUint32(16, 2000); }, 'format', 'backing_file_size'],
];

const headerFieldBytes: Record<string, number> = {
  magic: 0, version: 4, backing_file_size: 16, cluster_bits: 20, size: 24, l1_size: 36, l1_table_offset: 40,
  refcount_table_offset: 48, refcount_table_clusters: 56, nb_snapshots: 60, snapshots_offset: 64, refcount_order: 96, header_length: 100,
};

describe('hostile headers', () => {
  it.each(cases)('%s', async (_name, poke, code, field) => {
    const bytes = await baseImage();
    poke(new DataView(bytes.buffer));
    const file = new MemoryFile(bytes);
    const error = await Qcow2Image.open(file).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Qcow2Error);
    expect((error as Qcow2Error).code).toBe(code);
    if (field !== undefined) {
      expect(error).toBeInstanceOf(Qcow2FormatError);
      expect((error as Qcow2FormatError).field).toBe(field);
      expect((error as Qcow2FormatError).limit).not.toBe('');
      // "at byte N" is the header field's own position, never what it points to.
      const byte = headerFieldBytes[field];
      if (byte !== undefined) expect((error as Qcow2Error).message).toMatch(new RegExp(`^(invalid ${field}|qcow2 header too short: ${field}) at byte ${byte}: `));
    }
    expect(Buffer.compare(file.bytes(), bytes)).toBe(0);
  });

  // `check` speaks through the model's decoder, every other command through the engine: one fault, one wording.
  // qemu-img check opens an image without a refcount table (BDRV_O_CHECK) to report it; qemu-img info does not.
  const checkOpens = new Set(['refcount_table_clusters 0']);
  it.each(cases)('%s: check words the refusal as the engine does', async (name, poke) => {
    const bytes = await baseImage();
    poke(new DataView(bytes.buffer));
    const engine = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true }).then(() => undefined, (e: unknown) => e);
    const report = checkImage(bufferReader(bytes));
    if (engine === undefined || checkOpens.has(name)) {
      // A read-only open accepts it (as QEMU): the checker gets past the header too.
      expect(report.failure ?? '').not.toMatch(/^Could not open/);
    } else {
      expect(report.failure).toMatch(/^(Could not open|Check failed \(snapshot table\)): /);
      expect(report.failure?.replace(/^[^:]*: /, '')).toBe((engine as Error).message);
    }
  });

  it('snapshot extra data over 1024 bytes', async () => {
    const bytes = await baseImage();
    const view = new DataView(bytes.buffer);
    const table = Number(view.getBigUint64(64));
    view.setUint32(table + 36, 4096);
    await expect(Qcow2Image.open(new MemoryFile(bytes))).rejects.toMatchObject({ code: 'format', field: 'snapshot 0 extra_data_size' });
  });

  it('corrupt bit: read-only open works, read-write open is refused', async () => {
    const bytes = await baseImage();
    new DataView(bytes.buffer).setBigUint64(72, 2n);
    await expect(Qcow2Image.open(new MemoryFile(bytes))).rejects.toMatchObject({ code: 'corrupt' });
    const image = await Qcow2Image.open(new MemoryFile(bytes), { readOnly: true });
    expect((await image.info()).corrupt).toBe(true);
    expect((await image.read(0, 4))[0]).toBe(7);
    await expect(image.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: 'read-only' });
  });

  it('unknown autoclear bits are cleared at read-write open (bit 0 kept, as QEMU keeps it without bitmaps), unknown fields and extensions kept', async () => {
    const bytes = await baseImage();
    const view = new DataView(bytes.buffer);
    view.setBigUint64(88, 0x8000000000000003n);
    // An unknown extension before the feature table, and 8 unknown header bytes.
    const ext = bytes.slice(112, 1024);
    view.setUint32(100, 120);
    bytes.fill(0, 112, 1024);
    bytes.set([1, 2, 3, 4, 5, 6, 7, 8], 112);
    view.setUint32(120, 0x12345678);
    view.setUint32(124, 3);
    bytes.set([9, 9, 9], 128);
    bytes.set(ext.subarray(0, 1024 - 136), 136);
    const file = new MemoryFile(bytes);
    const image = await Qcow2Image.open(file);
    await image.write(0, new Uint8Array(1));
    await image.close();
    const out = file.bytes();
    const after = new DataView(out.buffer);
    expect(after.getBigUint64(88)).toBe(1n);
    expect(after.getUint32(100)).toBe(120);
    expect([...out.subarray(112, 120)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Buffer.from(out.subarray(120, 1024)).includes(Buffer.from([0x12, 0x34, 0x56, 0x78, 0, 0, 0, 3, 9, 9, 9]))).toBe(true);
  });
});
