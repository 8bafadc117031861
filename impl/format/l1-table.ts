// L1 table entries (digest §4.1): bits 9..55 L2 table offset, bit 63 COPIED.
import { Qcow2Error, toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';

export const l1OffsetMask = 0x00fffffffffffe00n;
export const l1ReservedMask = 0x7f000000000001ffn;
const oflagCopied = 1n << 63n;

/** In-memory L1: offsets as numbers (0 = no table) and COPIED flags. */
export class L1Table {
  offsets: Float64Array;
  copied: Uint8Array;
  constructor(size: number) {
    this.offsets = new Float64Array(size);
    this.copied = new Uint8Array(size);
  }
  get size(): number {
    return this.offsets.length;
  }
  clone(): L1Table {
    const t = new L1Table(this.size);
    t.offsets.set(this.offsets);
    t.copied.set(this.copied);
    return t;
  }
  /** A copy with `size` entries (zero padded or cut). */
  resized(size: number): L1Table {
    const t = new L1Table(size);
    t.offsets.set(this.offsets.subarray(0, Math.min(size, this.size)));
    t.copied.set(this.copied.subarray(0, Math.min(size, this.size)));
    return t;
  }
}

export function decodeL1(bytes: Uint8Array, size: number, clusterSize: number, tableOffset: number): L1Table {
  assert(bytes.length >= size * 8, 'whole L1 read');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const table = new L1Table(size);
  for (let i = 0; i < size; i++) {
    const raw = view.getBigUint64(i * 8);
    if ((raw & l1ReservedMask) !== 0n) {
      throw new Qcow2Error('corrupt', `L1 table at ${tableOffset} entry ${i}: reserved bits set (0x${raw.toString(16)})`);
    }
    const offset = toSafeNumber(raw & l1OffsetMask, 'L1 entry offset', tableOffset + i * 8);
    if (offset % clusterSize !== 0) {
      throw new Qcow2Error('corrupt', `L1 table at ${tableOffset} entry ${i}: unaligned L2 table offset ${offset}`);
    }
    table.offsets[i] = offset;
    table.copied[i] = offset !== 0 && (raw & oflagCopied) !== 0n ? 1 : 0;
  }
  return table;
}

/** Entries [first, first + count) as on disk. */
export function encodeL1(table: L1Table, first = 0, count = table.size - first): Uint8Array {
  assert(Number.isInteger(first) && first >= 0 && Number.isInteger(count) && count >= 0 && first + count <= table.size, 'encoded L1 entries exist');
  const out = new Uint8Array(count * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const offset = table.offsets[first + i] ?? 0;
    assert(Number.isSafeInteger(offset) && offset % 512 === 0, 'L1 offsets are aligned');
    view.setBigUint64(i * 8, BigInt(offset) | (table.copied[first + i] ? oflagCopied : 0n));
  }
  return out;
}
