// Compressed clusters without QEMU at test time (so the mutation run sees them):
// fixtures/compressed-4k.qcow2 was made once with
//   qemu-img convert -c -f raw -O qcow2 -o cluster_size=4096 raw.img compressed-4k.qcow2
// (QEMU 7.2) from the 64 KiB disk that fixtureDisk() rebuilds: 13 text clusters
// compressed and packed together into one host cluster, clusters 4 and 5
// incompressible (stored normal), cluster 6 zero (unallocated). The oracle
// here is the guest bytes, tracked by hand, plus the model's checker (it counts
// every host cluster a compressed stream touches, like qemu-img check) after
// every operation.
import { describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { MemoryFile, Qcow2Image } from '../../impl/index.js';
import { bufferReader, checkImage } from '../../model/index.js';
import { classifyL2Entry } from '../../impl/format/l2-entry.js';
import { keepOpen } from './model-agreement.js';
import { pseudoRandomBytes } from './qemu-helpers.js';

const cs = 4096;
const diskSize = 16 * cs;

function fixtureDisk(): Uint8Array {
  const out = new Uint8Array(diskSize);
  let x = 20261125;
  for (let c = 0; c < 16; c++) {
    if (c === 4 || c === 5) {
      for (let i = 0; i < cs; i++) {
        x = Number((BigInt(x) * 1103515245n + 12345n) % 2n ** 31n);
        out[c * cs + i] = (x >> 16) & 255;
      }
    } else if (c !== 6) {
      const line = new TextEncoder().encode(`cluster ${String(c).padStart(2, '0')} qcow2-verify compressed fixture `);
      for (let i = 0; i < cs; i++) out[c * cs + i] = line[i % line.length] ?? 0;
    }
  }
  return out;
}

async function openFixture(): Promise<{ file: MemoryFile; image: Qcow2Image }> {
  const bytes = new Uint8Array(await readFile(new URL('./fixtures/compressed-4k.qcow2', import.meta.url)));
  const file = new MemoryFile(bytes);
  return { file, image: await Qcow2Image.open(keepOpen(file)) };
}

/** The kinds of guest clusters 0..15 in the active L2 table, read straight from the bytes. */
function kinds(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const l1Offset = Number(view.getBigUint64(40));
  const l2Offset = Number(view.getBigUint64(l1Offset) & 0x00fffffffffffe00n);
  if (l2Offset === 0) return new Array<string>(16).fill('unallocated');
  return [...Array(16).keys()].map((c) => classifyL2Entry(view.getBigUint64(l2Offset + 8 * c)));
}

/** After each step: the guest reads `expected`, the flushed image is clean. */
async function agrees(file: MemoryFile, image: Qcow2Image, expected: Uint8Array, when: string): Promise<void> {
  expect(await image.read(0, diskSize), when).toEqual(expected);
  await image.flush();
  const report = checkImage(bufferReader(file.bytes()));
  expect(`${report.verdict} ${report.messages.slice(0, 3).join('; ')}`, when).toBe('clean ');
}

describe('compressed clusters (fixture made by qemu-img convert -c)', () => {
  it('reads the fixture as the disk it was made from', async () => {
    const { file, image } = await openFixture();
    expect(kinds(file.bytes()).filter((k) => k === 'compressed')).toHaveLength(13);
    expect(await image.read(0, diskSize)).toEqual(fixtureDisk());
    // unaligned reads across compressed, normal and unallocated clusters
    expect(await image.read(3 * cs + 100, 4 * cs)).toEqual(fixtureDisk().subarray(3 * cs + 100, 7 * cs + 100));
    await image.close();
  });

  it('reads a compressed entry carrying COPIED as QEMU does (the flag masked away), while check reports it', async () => {
    const bytes = new Uint8Array(await readFile(new URL('./fixtures/compressed-4k.qcow2', import.meta.url)));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const l2Offset = Number(view.getBigUint64(Number(view.getBigUint64(40))) & 0x00fffffffffffe00n);
    view.setBigUint64(l2Offset, view.getBigUint64(l2Offset) | (1n << 63n));
    const report = checkImage(bufferReader(bytes));
    expect(report.verdict).toBe('corrupt');
    expect(report.messages.join('\n')).toMatch(/copied flag must never be set for compressed clusters/);
    const image = await Qcow2Image.open(keepOpen(new MemoryFile(bytes)), { readOnly: true });
    expect(await image.read(0, diskSize)).toEqual(fixtureDisk());
    await image.close();
  });

  it('overwrite, zero, discard, snapshots: right bytes, clean image, shared stream counted', async () => {
    const { file, image } = await openFixture();
    const expected = fixtureDisk();
    const write = async (offset: number, data: Uint8Array) => {
      await image.write(offset, data);
      expected.set(data, offset);
    };
    await write(cs + 10, pseudoRandomBytes(100, 1)); // COW of a compressed cluster
    await agrees(file, image, expected, 'partial overwrite');
    expect(kinds(file.bytes())[1]).toBe('normal');
    await write(2 * cs, pseudoRandomBytes(cs, 2)); // whole cluster: no COW, the stream loses a reference
    await agrees(file, image, expected, 'whole overwrite');
    await image.writeZeroes(3 * cs, cs, { unmap: false });
    expected.fill(0, 3 * cs, 4 * cs);
    await agrees(file, image, expected, 'write zeroes');
    expect(kinds(file.bytes())[3]).toBe('zero-plain');
    await image.writeZeroes(7 * cs + 5, 10, { unmap: false }); // partial: zeros written through COW
    expected.fill(0, 7 * cs + 5, 7 * cs + 15);
    await agrees(file, image, expected, 'partial write zeroes');
    await image.snapshots.create('s1'); // the shared stream now has one more reference per cluster
    await agrees(file, image, expected, 'snapshot create');
    const atSnapshot = expected.slice();
    await image.discard(8 * cs, 2 * cs);
    expected.fill(0, 8 * cs, 10 * cs);
    await write(11 * cs + 1, pseudoRandomBytes(5, 3));
    await agrees(file, image, expected, 'discard and COW after the snapshot');
    await image.snapshots.revert('s1');
    expected.set(atSnapshot);
    await agrees(file, image, expected, 'revert');
    await image.snapshots.delete('s1');
    await agrees(file, image, expected, 'delete');
    await image.discard(0, diskSize); // every remaining stream reference goes
    expected.fill(0);
    await agrees(file, image, expected, 'discard all');
    await image.close();
    expect(kinds(file.bytes()).every((k) => k === 'zero-plain' || k === 'unallocated')).toBe(true);
    expect(checkImage(bufferReader(file.bytes())).verdict).toBe('clean');
  });

  it('shrink drops compressed clusters past the end', async () => {
    const { file, image } = await openFixture();
    await image.resize(6 * cs);
    await image.resize(diskSize);
    const expected = fixtureDisk();
    expected.fill(0, 6 * cs);
    await agrees(file, image, expected, 'shrink and grow');
    expect(kinds(file.bytes()).slice(6).every((k) => k === 'unallocated')).toBe(true);
    await image.close();
  });
});
