// decodeImage: every structure the model's domain needs, parsed from the bytes
// alone. Strict: whatever the model cannot represent (reserved bits, unaligned
// offsets, COPIED on a compressed entry, zero flag in v2) is a DecodeError; the checker
// (model/check/) is the tolerant reader that counts such damage instead.
import { u64Table, type ByteReader } from './byte-reader.js';
import { DecodeError, toNumber } from './decode-error.js';
import { allocatedAndZero, bitmapAllocMask, l2EntryBytes, splitBitmap, type SubclusterBitmap } from './extended-l2.js';
import { decodeHeader, type Header } from './header.js';
import { classifyL2Entry, compressedRange, l1eOffsetMask, l1eReservedMask, l2eOffsetMask, l2eStdReservedMask, oflagCopied, type EntryKind } from './l2-entry.js';
import * as L from './limits.js';
import { refcountReader, type RefcountReader } from './refcounts.js';
import { decodeSnapshotTable, type SnapshotEntry } from './snapshot-table.js';

export interface DecodedL2Entry {
  readonly kind: EntryKind;
  /** Host offset of the data cluster (normal, zero-alloc), or the byte offset of a compressed stream. */
  readonly host?: number;
  /** Bytes of a compressed stream's range from `host` (its sectors, clipped to the file). */
  readonly length?: number;
  readonly copied: boolean;
  /** Extended L2 only: which subclusters are allocated and which read as zeros (never both). */
  readonly subclusters?: SubclusterBitmap;
}

export interface DecodedL1 {
  /** L2 table host offset per L1 index (0 = none). */
  readonly l2Offsets: readonly number[];
  readonly copied: readonly boolean[];
}

export interface DecodedImage {
  readonly header: Header;
  readonly fileSize: number;
  readonly active: DecodedL1;
  readonly snapshots: readonly (SnapshotEntry & { readonly l1: DecodedL1 })[];
  /** Every L2 table reachable from any L1, by host offset. */
  readonly l2Tables: ReadonlyMap<number, readonly DecodedL2Entry[]>;
  readonly refcounts: RefcountReader;
  readonly reader: ByteReader;
}

export function decodeImage(reader: ByteReader): DecodedImage {
  const header = decodeHeader(reader);
  const active = decodeL1(reader, header, toNumber(header.l1TableOffset, 'l1_table_offset', 40), header.l1Size, 'l1_table_offset');
  const table = decodeSnapshotTable(reader, header);
  if (table.incompleteEntries > 0) throw new DecodeError('snapshot extra_data_size', `< ${L.snapshotExtraDataMinV3}`, `>= ${L.snapshotExtraDataMinV3} in version 3`, toNumber(header.snapshotsOffset, 'snapshots_offset', 64));
  const snapshots = table.entries.map((s) => {
    if (s.l1Size > L.snapshotL1EntriesMax) throw new DecodeError('snapshot l1_size', String(s.l1Size), `<= ${L.snapshotL1EntriesMax}`, s.entryOffset + 8);
    const l1Offset = toNumber(s.l1TableOffset, 'snapshot l1_table_offset', s.entryOffset);
    if (l1Offset % header.clusterSize !== 0) throw new DecodeError('snapshot l1_table_offset', String(l1Offset), `aligned to ${header.clusterSize}`, s.entryOffset);
    return { ...s, l1: decodeL1(reader, header, l1Offset, s.l1Size, `snapshot ${s.id} L1`) };
  });
  const l2Tables = new Map<number, DecodedL2Entry[]>();
  for (const l1 of [active, ...snapshots.map((s) => s.l1)]) {
    for (const offset of l1.l2Offsets) if (offset !== 0 && !l2Tables.has(offset)) l2Tables.set(offset, decodeL2(reader, header, offset));
  }
  return { header, fileSize: reader.size, active, snapshots, l2Tables, refcounts: refcountReader(reader, header), reader };
}

function decodeL1(reader: ByteReader, header: Header, offset: number, size: number, what: string): DecodedL1 {
  const raw = u64Table(reader.read(offset, size * 8), size);
  const l2Offsets: number[] = [];
  const copied: boolean[] = [];
  raw.forEach((entry, i) => {
    const at = offset + i * 8;
    if ((entry & l1eReservedMask) !== 0n) throw new DecodeError(`${what} entry ${i}`, `0x${entry.toString(16)}`, 'no reserved bits', at);
    const l2 = toNumber(entry & l1eOffsetMask, `${what} entry ${i}`, at);
    if (l2 % header.clusterSize !== 0) throw new DecodeError(`${what} entry ${i} L2 offset`, String(l2), `aligned to ${header.clusterSize}`, at);
    // Keeps the number of decoded tables bounded by the file size, whatever l1_size says.
    if (l2 >= reader.size) throw new DecodeError(`${what} entry ${i} L2 offset`, String(l2), `< file size ${reader.size}`, at);
    l2Offsets.push(l2);
    copied.push(entry >> 63n === 1n);
  });
  return { l2Offsets, copied };
}

function decodeL2(reader: ByteReader, header: Header, offset: number): DecodedL2Entry[] {
  const entryBytes = l2EntryBytes(header.extendedL2);
  const words = u64Table(reader.read(offset, header.clusterSize), header.clusterSize / 8);
  const out: DecodedL2Entry[] = [];
  for (let i = 0; i < header.clusterSize / entryBytes; i++) {
    const at = offset + i * entryBytes;
    const word = (i * entryBytes) / 8;
    const entry = words[word]!;
    const bad = (limit: string) => new DecodeError(`L2 entry ${i}`, `0x${entry.toString(16)}`, limit, at);
    const decoded = decodeL2Entry(entry, header, reader.size, bad, i, at);
    if (!header.extendedL2) {
      out.push(decoded);
      continue;
    }
    const bitmap = words[word + 1]!;
    out.push(withBitmap(decoded, bitmap, (limit) => new DecodeError(`L2 entry ${i} subcluster bitmap`, `0x${bitmap.toString(16)}`, limit, at + 8)));
  }
  return out;
}

function decodeL2Entry(entry: bigint, header: Header, fileSize: number, bad: (limit: string) => DecodeError, i: number, at: number): DecodedL2Entry {
  const kind = classifyL2Entry(entry, header.extendedL2);
  if (kind === 'compressed') return decodeCompressed(entry, header, fileSize, bad);
  if ((entry & l2eStdReservedMask) !== 0n) throw bad('no reserved bits');
  if (header.version === 2 && (entry & 1n) !== 0n) throw bad('no zero flag in version 2');
  if (header.extendedL2 && (entry & 1n) !== 0n) throw bad('no zero flag with extended L2 entries');
  const copied = entry >> 63n === 1n;
  if (kind === 'unallocated' || kind === 'zero-plain') return { kind, copied };
  const host = toNumber(entry & l2eOffsetMask, `L2 entry ${i}`, at);
  if (host % header.clusterSize !== 0) throw bad(`data offset aligned to ${header.clusterSize}`);
  if (host >= fileSize) throw bad(`data offset < file size ${fileSize}`);
  return { kind, host, copied };
}

/**
 * The bitmap of an extended entry, refused where QEMU's qcow2_get_subcluster_type
 * says QCOW2_SUBCLUSTER_INVALID (reads fail with EIO) or its check counts a corruption.
 */
function withBitmap(decoded: DecodedL2Entry, bitmap: bigint, bad: (limit: string) => DecodeError): DecodedL2Entry {
  if (decoded.kind === 'compressed') {
    if (bitmap !== 0n) throw bad('0 on a compressed entry');
    return decoded;
  }
  if (allocatedAndZero(bitmap)) throw bad('no subcluster both allocated and zero');
  if (decoded.kind === 'unallocated' && (bitmap & bitmapAllocMask) !== 0n) throw bad('no allocated subcluster in an unallocated cluster');
  return { ...decoded, subclusters: splitBitmap(bitmap) };
}

/**
 * A compressed descriptor (digest §4.3): the stream must start inside the file
 * and past the header; its last sector may run past the end of the file, whose
 * last stream QEMU writes without padding, so its range is clipped there.
 */
function decodeCompressed(entry: bigint, header: Header, fileSize: number, bad: (limit: string) => DecodeError): DecodedL2Entry {
  if ((entry & oflagCopied) !== 0n) throw bad('no COPIED on a compressed entry');
  const range = compressedRange(entry, header.clusterBits);
  if (range.start < BigInt(header.clusterSize) || range.start >= BigInt(fileSize)) throw bad(`compressed stream inside the file, past the header (file size ${fileSize})`);
  const host = Number(range.start);
  return { kind: 'compressed', host, length: Math.min(Number(range.length), fileSize - host), copied: false };
}
