// Where things are in a QEMU-written image, read straight from the bytes (the
// damage suite must not depend on the model it is judging). Only what the damage
// functions need: header fields, the active L1 and its L2 tables, the reftable,
// refcounts of every width, and the snapshot table entries.
import { getU32, getU64, setU64, toNumber } from './poke.js';

export const copiedBit = 1n << 63n;
export const compressedBit = 1n << 62n;
export const zeroBit = 1n;
export const offsetMask = 0x00fffffffffffe00n;

/** Header field offsets (qcow2 spec, digest §2.1). */
export const headerField = {
  version: 4,
  clusterBits: 20,
  size: 24,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatibleFeatures: 72,
  refcountOrder: 96,
  headerLength: 100,
} as const;

export interface SnapshotEntry {
  /** File offset of the entry. */
  readonly at: number;
  readonly l1TableOffset: number;
  readonly l1Size: number;
  readonly extraDataSize: number;
}

export interface L2Entry {
  /** File offset of the 8-byte entry. */
  readonly at: number;
  /** Guest cluster index. */
  readonly guestCluster: number;
  readonly raw: bigint;
  /** Extended L2 only: the subcluster bitmap (at `at + 8`); 0 otherwise. */
  readonly bitmap: bigint;
}

/** Incompatible bit 4: 16-byte L2 entries (an 8-byte entry, then the subcluster bitmap). */
export const extendedL2Bit = 1n << 4n;

export class Layout {
  readonly cs: number;
  readonly version: number;
  readonly refcountBits: number;
  readonly l1Offset: number;
  readonly l1Size: number;
  readonly reftableOffset: number;
  readonly snapshots: readonly SnapshotEntry[];
  readonly extendedL2: boolean;
  /** Bytes per L2 entry: 16 with extended L2, else 8. */
  readonly l2EntryBytes: number;

  constructor(private readonly image: Uint8Array) {
    this.version = getU32(image, headerField.version);
    this.extendedL2 = this.version === 3 && (getU64(image, headerField.incompatibleFeatures) & extendedL2Bit) !== 0n;
    this.l2EntryBytes = this.extendedL2 ? 16 : 8;
    this.cs = 2 ** getU32(image, headerField.clusterBits);
    this.refcountBits = this.version === 2 ? 16 : 2 ** getU32(image, headerField.refcountOrder);
    this.l1Offset = toNumber(getU64(image, headerField.l1TableOffset));
    this.l1Size = getU32(image, headerField.l1Size);
    this.reftableOffset = toNumber(getU64(image, headerField.refcountTableOffset));
    this.snapshots = this.readSnapshots();
  }

  /** File offset of active L1 entry `index`. */
  l1EntryAt(index: number): number {
    return this.l1Offset + 8 * index;
  }

  l1Entry(index: number): bigint {
    return getU64(this.image, this.l1EntryAt(index));
  }

  /** Host offset of the L2 table behind active L1 entry `index` (0 = none). */
  l2TableOffset(index: number): number {
    return toNumber(this.l1Entry(index) & offsetMask);
  }

  /** Every non-zero L2 entry (entry or bitmap) reachable from the active L1, in guest order. */
  l2Entries(): L2Entry[] {
    const perTable = this.cs / this.l2EntryBytes;
    const out: L2Entry[] = [];
    for (let i = 0; i < this.l1Size; i++) {
      const table = this.l2TableOffset(i);
      if (table === 0) continue;
      for (let j = 0; j < perTable; j++) {
        const at = table + this.l2EntryBytes * j;
        const raw = getU64(this.image, at);
        const bitmap = this.extendedL2 ? getU64(this.image, at + 8) : 0n;
        if (raw !== 0n || bitmap !== 0n) out.push({ at, guestCluster: i * perTable + j, raw, bitmap });
      }
    }
    return out;
  }

  /** The first active L2 entry satisfying `predicate`; throws if the base image has none. */
  findL2(description: string, predicate: (entry: L2Entry) => boolean): L2Entry {
    const entry = this.l2Entries().find(predicate);
    if (entry === undefined) throw new Error(`base image has no L2 entry that is ${description}`);
    return entry;
  }

  /** First active L1 index whose entry satisfies `predicate`. */
  findL1(description: string, predicate: (entry: bigint) => boolean): number {
    for (let i = 0; i < this.l1Size; i++) if (predicate(this.l1Entry(i))) return i;
    throw new Error(`base image has no L1 entry that is ${description}`);
  }

  reftableEntry(index: number): bigint {
    return getU64(this.image, this.reftableOffset + 8 * index);
  }

  /** On-disk refcount of host cluster `cluster` (sub-byte widths are LSB-first). */
  refcount(cluster: number): number {
    const { byte, shift, width } = this.refcountSlot(cluster);
    if (width >= 8) {
      let value = 0n;
      for (let i = 0; i < width / 8; i++) value = (value << 8n) | BigInt(this.image[byte + i] ?? 0);
      return toNumber(value);
    }
    return ((this.image[byte] ?? 0) >> shift) & ((1 << width) - 1);
  }

  setRefcount(cluster: number, value: number): void {
    const { byte, shift, width } = this.refcountSlot(cluster);
    if (width >= 8) {
      let rest = BigInt(value);
      for (let i = width / 8 - 1; i >= 0; i--) {
        this.image[byte + i] = Number(rest & 0xffn);
        rest >>= 8n;
      }
      return;
    }
    const mask = ((1 << width) - 1) << shift;
    this.image[byte] = ((this.image[byte] ?? 0) & ~mask) | ((value << shift) & mask);
  }

  /** Host cluster index of a byte offset. */
  cluster(offset: number): number {
    return Math.floor(offset / this.cs);
  }

  private refcountSlot(cluster: number): { byte: number; shift: number; width: number } {
    const width = this.refcountBits;
    const perBlock = (this.cs * 8) / width;
    const block = toNumber(this.reftableEntry(Math.floor(cluster / perBlock)) & ~0x1ffn);
    if (block === 0) throw new Error(`no refcount block covers cluster ${cluster}`);
    const bit = (cluster % perBlock) * width;
    return { byte: block + Math.floor(bit / 8), shift: bit % 8, width };
  }

  private readSnapshots(): SnapshotEntry[] {
    const count = getU32(this.image, headerField.nbSnapshots);
    let at = toNumber(getU64(this.image, headerField.snapshotsOffset));
    const out: SnapshotEntry[] = [];
    for (let i = 0; i < count; i++) {
      const extraDataSize = getU32(this.image, at + 36);
      const idSize = (this.image[at + 12] ?? 0) * 256 + (this.image[at + 13] ?? 0);
      const nameSize = (this.image[at + 14] ?? 0) * 256 + (this.image[at + 15] ?? 0);
      out.push({ at, l1TableOffset: toNumber(getU64(this.image, at)), l1Size: getU32(this.image, at + 8), extraDataSize });
      at += 40 + extraDataSize + idSize + nameSize;
      at = Math.ceil(at / 8) * 8;
    }
    return out;
  }
}

/** Set an 8-byte table entry (helper so damage reads as "entry := value"). */
export function setEntry(image: Uint8Array, at: number, value: bigint): void {
  setU64(image, at, value);
}
