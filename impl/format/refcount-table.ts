// Refcount table entries (digest §5.1): bits 9..63 refblock offset, 0..8 reserved.
import { Qcow2Error, toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';

export const reftReservedMask = 0x1ffn;

export function decodeReftable(bytes: Uint8Array, entriesCount: number, clusterSize: number, tableOffset: number): Float64Array {
  assert(bytes.length >= entriesCount * 8, 'whole reftable read');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(entriesCount);
  for (let i = 0; i < entriesCount; i++) {
    const raw = view.getBigUint64(i * 8);
    if ((raw & reftReservedMask) !== 0n) {
      throw new Qcow2Error('corrupt', `refcount table at ${tableOffset} entry ${i}: reserved bits set (0x${raw.toString(16)})`);
    }
    const offset = toSafeNumber(raw, 'refcount table entry', tableOffset + i * 8);
    if (offset % clusterSize !== 0) throw new Qcow2Error('corrupt', `refcount table entry ${i}: unaligned refcount block offset ${offset}`);
    out[i] = offset;
  }
  return out;
}

/** Encode entries [first, first + count) of the table. */
export function encodeReftable(table: Float64Array, first = 0, count = table.length - first): Uint8Array {
  const out = new Uint8Array(count * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const offset = table[first + i] ?? 0;
    assert(Number.isSafeInteger(offset) && offset % 512 === 0, 'refcount block offsets are aligned');
    view.setBigUint64(i * 8, BigInt(offset));
  }
  return out;
}
