// Refcount table entries (digest §5.1): bits 9..63 refblock offset, 0..8 reserved.
import { Qcow2Error, stricterThanQemu, toSafeNumber, type FaultPolicy } from '../errors.js';
import { assert } from '../assert.js';

export const reftReservedMask = 0x1ffn;
const safeIntegerMax = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Decode the refcount table (refblock offsets, 0 = none). A damaged entry is
 * refused (`at-open`) or, for a read-only open (`on-access`), decoded as no
 * refblock: a read-only image allocates and frees nothing, so it never reads a
 * refcount, and QEMU's qcow2_refcount_init does not look at the entries either.
 */
export function decodeReftable(bytes: Uint8Array, entriesCount: number, clusterSize: number, tableOffset: number, policy: FaultPolicy = 'at-open'): Float64Array {
  assert(bytes.length >= entriesCount * 8, 'whole reftable read');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(entriesCount);
  const clusterMask = BigInt(clusterSize - 1);
  for (let i = 0; i < entriesCount; i++) {
    const raw = view.getBigUint64(i * 8);
    if (raw === 0n) continue;
    const at = tableOffset + i * 8;
    const valid = (raw & reftReservedMask) === 0n && raw <= safeIntegerMax && (raw & clusterMask) === 0n;
    if (!valid && policy === 'on-access') continue;
    if ((raw & reftReservedMask) !== 0n) {
      throw new Qcow2Error('corrupt', `refcount table entry ${i} at byte ${at}: reserved bits set (0x${raw.toString(16)}); ${stricterThanQemu}`);
    }
    const offset = toSafeNumber(raw, `refcount table entry ${i}`, at);
    if (offset % clusterSize !== 0) {
      throw new Qcow2Error('corrupt', `refcount table entry ${i} at byte ${at}: unaligned refcount block offset ${offset}; ${stricterThanQemu}`);
    }
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
