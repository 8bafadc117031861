// L1 table entries (digest §4.1): bits 9..55 L2 table offset, bit 63 COPIED.
import { Qcow2Error, Qcow2FormatError, stricterThanQemu, type FaultPolicy } from '../errors.js';
import { assert } from '../assert.js';

export const l1OffsetMask = 0x00fffffffffffe00n;
export const l1ReservedMask = 0x7f000000000001ffn;
const oflagCopied = 1n << 63n;
const safeIntegerMax = BigInt(Number.MAX_SAFE_INTEGER);

/** In-memory L1: offsets as numbers (0 = no table) and COPIED flags. */
export class L1Table {
  offsets: Float64Array;
  copied: Uint8Array;
  /** Entries a read-only open kept although they are unusable: the error their first use throws. */
  readonly faults = new Map<number, Qcow2Error>();
  constructor(size: number) {
    this.offsets = new Float64Array(size);
    this.copied = new Uint8Array(size);
  }
  get size(): number {
    return this.offsets.length;
  }
  clone(): L1Table {
    assert(this.faults.size === 0, 'only a read-only L1 keeps faulty entries, and it is never copied');
    const t = new L1Table(this.size);
    t.offsets.set(this.offsets);
    t.copied.set(this.copied);
    return t;
  }
  /** A copy with `size` entries (zero padded or cut). */
  resized(size: number): L1Table {
    assert(this.faults.size === 0, 'only a read-only L1 keeps faulty entries, and it never grows');
    const t = new L1Table(size);
    t.offsets.set(this.offsets.subarray(0, Math.min(size, this.size)));
    t.copied.set(this.copied.subarray(0, Math.min(size, this.size)));
    return t;
  }
}

/**
 * Decode `size` L1 entries read from `tableOffset` (digest §4.1). A damaged entry
 * is refused (`at-open`, a read-write open) or handled as QEMU's
 * qcow2_get_host_offset handles it on a read (`on-access`): reserved bits are
 * masked off, an L2 offset past 2^53 lies past any file and reads as zeros (an
 * unallocated table), and an unaligned L2 offset becomes a fault that the first
 * access to the entry throws, with QEMU's words.
 */
export function decodeL1(bytes: Uint8Array, size: number, clusterSize: number, tableOffset: number, policy: FaultPolicy = 'at-open'): L1Table {
  assert(bytes.length >= size * 8, 'whole L1 read');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const table = new L1Table(size);
  const clusterMask = BigInt(clusterSize - 1);
  for (let i = 0; i < size; i++) {
    const raw = view.getBigUint64(i * 8);
    if (raw === 0n) continue;
    const l2Offset = raw & l1OffsetMask;
    if (policy === 'at-open') {
      const fault = entryFault(raw, l2Offset, i, tableOffset + i * 8, clusterSize);
      if (fault !== undefined) throw fault;
    } else if ((l2Offset & clusterMask) !== 0n) {
      table.faults.set(i, unalignedL2(l2Offset, i));
      continue;
    }
    if (l2Offset > safeIntegerMax) continue;
    table.offsets[i] = Number(l2Offset);
    table.copied[i] = l2Offset !== 0n && (raw & oflagCopied) !== 0n ? 1 : 0;
  }
  return table;
}

/** QEMU's words (qcow2_get_host_offset, printf's %#x). */
function unalignedL2(l2Offset: bigint, index: number): Qcow2Error {
  const hex = (n: bigint) => (n === 0n ? '0' : `0x${n.toString(16)}`);
  return new Qcow2Error('corrupt', `L2 table offset ${hex(l2Offset)} unaligned (L1 index: ${hex(BigInt(index))})`);
}

/** What is wrong with L1 entry `index` (at byte `at`), if anything; the message says read-only open is laxer. */
function entryFault(raw: bigint, l2Offset: bigint, index: number, at: number, clusterSize: number): Qcow2Error | undefined {
  if ((raw & l1ReservedMask) !== 0n) {
    return new Qcow2Error('corrupt', `L1 entry ${index} at byte ${at}: reserved bits set (0x${raw.toString(16)}); ${stricterThanQemu}`);
  }
  if (l2Offset % BigInt(clusterSize) !== 0n) return unalignedL2(l2Offset, index);
  if (l2Offset > safeIntegerMax) {
    return new Qcow2FormatError(`L1 entry ${index} L2 offset`, l2Offset, `at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1); ${stricterThanQemu}`, at);
  }
  return undefined;
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
