// L2 entries (digest §4.2, §4.5), standard (8 bytes) and extended (16, with the bitmap of l2-entry-extended.ts). This file holds the engine's
// one classifier from a raw entry to a cluster kind, like qcow2_get_cluster_type.
import { Qcow2Error, toSafeNumber } from '../errors.js';
import { assert, assertNever } from '../assert.js';
import { decodeCompressed, encodeCompressed, type CompressedDescriptor } from './compressed-descriptor.js';
import { decodeBitmap, encodeBitmap, type SubclusterBitmap } from './l2-entry-extended.js';

export const l2OffsetMask = 0x00fffffffffffe00n;
export const l2StdReservedMask = 0x3f000000000001fen;
export const oflagZero = 1n;
export const oflagCompressed = 1n << 62n;
export const oflagCopied = 1n << 63n;

export type ClusterKind = 'unallocated' | 'zero-plain' | 'zero-alloc' | 'normal' | 'compressed';

export type L2Entry =
  | { readonly kind: 'unallocated' }
  | { readonly kind: 'zero-plain' }
  | { readonly kind: 'zero-alloc'; readonly offset: number; readonly copied: boolean }
  | { readonly kind: 'normal'; readonly offset: number; readonly copied: boolean }
  | { readonly kind: 'compressed'; readonly descriptor: CompressedDescriptor };

export const unallocatedEntry: L2Entry = { kind: 'unallocated' };
export const zeroPlainEntry: L2Entry = { kind: 'zero-plain' };

/**
 * qcow2_get_cluster_type without an external data file. With extended L2
 * entries the zero flag is ignored: the subcluster bitmap says what reads as zeros.
 */
export function classifyL2Entry(raw: bigint, extendedL2 = false): ClusterKind {
  if ((raw & oflagCompressed) !== 0n) return 'compressed';
  if ((raw & oflagZero) !== 0n && !extendedL2) return (raw & l2OffsetMask) !== 0n ? 'zero-alloc' : 'zero-plain';
  return (raw & l2OffsetMask) === 0n ? 'unallocated' : 'normal';
}

export interface L2Context {
  version: 2 | 3;
  clusterBits: number;
  /** 16-byte entries: the 8-byte entry, then its subcluster bitmap (l2-entry-extended.ts). Absent: standard entries. */
  extendedL2?: boolean;
}

/** Decode with the checks QEMU treats as fatal corruption when it maps a cluster. */
export function decodeL2Entry(raw: bigint, ctx: L2Context, where: string): L2Entry {
  const kind = classifyL2Entry(raw, ctx.extendedL2 === true);
  switch (kind) {
    case 'compressed':
      // COPIED on a compressed entry is damage for check (check_refcounts_l2), but QEMU's reads mask it away
      // with the compressed flag (L2E_COMPRESSED_OFFSET_SIZE_MASK) and so do ours. On an extended-L2 image such
      // an entry is still refused: it is what a normal entry (COPIED, subcluster bits) with the compressed bit
      // set looks like, and check then counts no references for it, which the engine's repair cannot follow.
      if (ctx.extendedL2 === true && (raw & oflagCopied) !== 0n) throw new Qcow2Error('corrupt', `${where}: compressed L2 entry with COPIED`);
      return { kind, descriptor: decodeCompressed(raw & ~(oflagCompressed | oflagCopied), ctx.clusterBits) };
    case 'unallocated':
    case 'zero-plain':
    case 'zero-alloc':
    case 'normal': {
      if ((raw & l2StdReservedMask) !== 0n) throw new Qcow2Error('corrupt', `${where}: reserved bits set in L2 entry 0x${raw.toString(16)}`);
      if ((kind === 'zero-plain' || kind === 'zero-alloc') && ctx.version === 2) throw new Qcow2Error('corrupt', `${where}: zero flag in a version 2 image`);
      if (kind === 'unallocated') return unallocatedEntry;
      if (kind === 'zero-plain') return zeroPlainEntry;
      const offset = toSafeNumber(raw & l2OffsetMask, 'L2 entry offset');
      if (offset % 2 ** ctx.clusterBits !== 0) throw new Qcow2Error('corrupt', `${where}: unaligned data cluster offset ${offset}`);
      return { kind, offset, copied: (raw & oflagCopied) !== 0n };
    }
    default:
      return assertNever(kind, 'cluster kind');
  }
}

export function encodeL2Entry(entry: L2Entry, ctx: L2Context): bigint {
  switch (entry.kind) {
    case 'unallocated':
      return 0n;
    case 'zero-plain':
      assert(ctx.version === 3 && ctx.extendedL2 !== true, 'zero clusters exist only in version 3, without extended L2');
      return oflagZero;
    case 'zero-alloc':
    case 'normal': {
      assert(entry.offset > 0 && entry.offset % 2 ** ctx.clusterBits === 0, 'data cluster offset is aligned and non-zero');
      assert(entry.kind === 'normal' || (ctx.version === 3 && ctx.extendedL2 !== true), 'zero clusters exist only in version 3, without extended L2');
      const flags = (entry.copied ? oflagCopied : 0n) | (entry.kind === 'zero-alloc' ? oflagZero : 0n);
      return BigInt(entry.offset) | flags;
    }
    case 'compressed':
      return encodeCompressed(entry.descriptor, ctx.clusterBits) | oflagCompressed;
    default:
      return assertNever(entry, 'L2 entry');
  }
}

/**
 * One L2 table: a cluster of big-endian entries, decoded on access. With
 * extended L2 each entry is followed by its subcluster bitmap, which `set`
 * leaves alone and `bitmap` / `setBitmap` read and write.
 */
export class L2Table {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly entryBytes: number;
  constructor(
    bytes: Uint8Array,
    private readonly ctx: L2Context,
    readonly where: number,
  ) {
    assert(bytes.length === 2 ** ctx.clusterBits, 'an L2 table is one cluster');
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.entryBytes = ctx.extendedL2 === true ? 16 : 8;
  }
  get entriesCount(): number {
    return this.bytes.length / this.entryBytes;
  }
  raw(index: number): bigint {
    return this.view.getBigUint64(index * this.entryBytes);
  }
  get(index: number): L2Entry {
    return decodeL2Entry(this.raw(index), this.ctx, this.entryName(index));
  }
  set(index: number, entry: L2Entry): void {
    assert(index >= 0 && index < this.entriesCount, 'L2 index inside the table');
    this.view.setBigUint64(index * this.entryBytes, encodeL2Entry(entry, this.ctx));
  }
  /** Extended L2 only: the subcluster bitmap of entry `index`, validated against its entry. */
  bitmap(index: number): SubclusterBitmap {
    assert(this.ctx.extendedL2 === true, 'only extended L2 entries have a subcluster bitmap');
    const where = this.entryName(index);
    return decodeBitmap(this.view.getBigUint64(index * 16 + 8), classifyL2Entry(this.raw(index), true), where);
  }
  setBitmap(index: number, bitmap: SubclusterBitmap): void {
    assert(this.ctx.extendedL2 === true, 'only extended L2 entries have a subcluster bitmap');
    assert(index >= 0 && index < this.entriesCount, 'L2 index inside the table');
    this.view.setBigUint64(index * 16 + 8, encodeBitmap(bitmap));
  }
  private entryName(index: number): string {
    return `L2 table at ${this.where} entry ${index}`;
  }
}
