// The snapshot table (digest §6.1): entries 8-byte aligned relative to the file,
// the recorded size excludes the last entry's padding.
import { Qcow2FormatError, stricterThanQemu, toSafeNumber, type FaultPolicy } from '../errors.js';
import { assert } from '../assert.js';
import { snapshotExtraDataBytesMax } from '../limits.js';

export interface SnapshotEntry {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: bigint;
  /** vm_state_size_large when present, else the 32-bit field. */
  vmStateSize: number;
  /** disk_size when present. */
  diskSize: number | undefined;
  /** Raw extra data (at least what was read), preserved on rewrite. */
  extraData: Uint8Array;
}

const entryFixedBytes = 40;
/** Extra data up to and including icount (QEMU >= 5.2). */
const extraDataIcountEnd = 24;
/** icount -1: disabled, and what QEMU assumes when the extra data is shorter. */
const icountDisabled = -1n;

/**
 * The snapshot's record/replay instruction count as QEMU reports it (int64), or
 * undefined when disabled (-1) or absent (extra data shorter than 24 bytes):
 * qemu-img then leaves it out of its JSON and blank in its listing.
 */
export function snapshotIcount(e: SnapshotEntry): bigint | undefined {
  if (e.extraData.length < extraDataIcountEnd) return undefined;
  const icount = new DataView(e.extraData.buffer, e.extraData.byteOffset, e.extraData.byteLength).getBigInt64(16);
  return icount === icountDisabled ? undefined : icount;
}
const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/**
 * Decode `count` entries from the table bytes (read from the file starting at
 * tableOffset). A 64-bit field past 2^53 is refused (`at-open`) or, for a
 * read-only open (`on-access`), kept rounded: QEMU's qcow2_read_snapshots does
 * not look at these fields, a read-only image only lists its snapshots, and
 * every snapshot operation needs a read-write open, which refuses them.
 */
export function decodeSnapshotTable(bytes: Uint8Array, count: number, tableOffset: number, policy: FaultPolicy = 'at-open'): SnapshotEntry[] {
  const big = (value: bigint, field: string, at: number) => (policy === 'on-access' ? Number(value) : toSafeNumber(value, field, at, stricterThanQemu));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: SnapshotEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    at = (at + 7) & ~7;
    const where = tableOffset + at;
    if (at + entryFixedBytes > bytes.length) throw new Qcow2FormatError('snapshot table', `entry ${i}`, 'inside the table', where);
    const idSize = view.getUint16(at + 12);
    const nameSize = view.getUint16(at + 14);
    const extraSize = view.getUint32(at + 36);
    if (extraSize > snapshotExtraDataBytesMax) {
      throw new Qcow2FormatError('snapshot extra_data_size', extraSize, `at most ${snapshotExtraDataBytesMax}`, where + 36);
    }
    const end = at + entryFixedBytes + extraSize + idSize + nameSize;
    if (end > bytes.length) throw new Qcow2FormatError('snapshot table entry', `entry ${i} ends at ${end}`, `at most ${bytes.length}`, where);
    const extra = bytes.slice(at + 40, at + 40 + extraSize);
    const extraView = new DataView(extra.buffer);
    const vmState32 = view.getUint32(at + 32);
    const vmStateSize = extraSize >= 8 ? big(extraView.getBigUint64(0), `snapshot ${i} vm_state_size_large`, where + 40) : vmState32;
    const diskSize = extraSize >= 16 ? big(extraView.getBigUint64(8), `snapshot ${i} disk_size`, where + 48) : undefined;
    const idAt = at + 40 + extraSize;
    entries.push({
      l1TableOffset: big(view.getBigUint64(at), `snapshot ${i} l1_table_offset`, where),
      l1Size: view.getUint32(at + 8),
      id: textDecoder.decode(bytes.subarray(idAt, idAt + idSize)),
      name: textDecoder.decode(bytes.subarray(idAt + idSize, idAt + idSize + nameSize)),
      dateSec: view.getUint32(at + 16),
      dateNsec: view.getUint32(at + 20),
      vmClockNsec: view.getBigUint64(at + 24),
      vmStateSize,
      diskSize,
      extraData: extra,
    });
    at = end;
  }
  return entries;
}

/** Bytes of the encoded table as QEMU records it (no padding after the last entry). */
export function encodeSnapshotTable(entries: readonly SnapshotEntry[], extraDataBytesMin: number): Uint8Array {
  const encoded = entries.map((e) => {
    const id = textEncoder.encode(e.id);
    const name = textEncoder.encode(e.name);
    const extraSize = Math.max(extraDataBytesMin, e.extraData.length);
    assert(extraSize <= snapshotExtraDataBytesMax && id.length < 65536 && name.length < 65536, 'snapshot entry fits its fields');
    const out = new Uint8Array(entryFixedBytes + extraSize + id.length + name.length);
    const view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(e.l1TableOffset));
    view.setUint32(8, e.l1Size);
    view.setUint16(12, id.length);
    view.setUint16(14, name.length);
    view.setUint32(16, e.dateSec);
    view.setUint32(20, e.dateNsec);
    view.setBigUint64(24, e.vmClockNsec);
    view.setUint32(32, e.vmStateSize <= 0xffffffff ? e.vmStateSize : 0);
    view.setUint32(36, extraSize);
    out.set(e.extraData, 40);
    if (extraSize >= 8) view.setBigUint64(40, BigInt(e.vmStateSize));
    if (extraSize >= 16 && e.diskSize !== undefined) view.setBigUint64(48, BigInt(e.diskSize));
    // QEMU reads a missing icount as -1 (disabled) and writes it back that way.
    if (extraSize >= extraDataIcountEnd && e.extraData.length < extraDataIcountEnd) view.setBigInt64(56, icountDisabled);
    out.set(id, 40 + extraSize);
    out.set(name, 40 + extraSize + id.length);
    return out;
  });
  let size = 0;
  for (const e of encoded) size = ((size + 7) & ~7) + e.length;
  const table = new Uint8Array(size);
  let at = 0;
  for (const e of encoded) {
    at = (at + 7) & ~7;
    table.set(e, at);
    at += e.length;
  }
  return table;
}
