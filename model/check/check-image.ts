// checkImage: qemu-img check's classification, following qcow2_co_check_locked
// → qcow2_check_read_snapshot_table, qcow2_check_refcounts (calculate_refcounts,
// check_refcounts_l1/l2, qcow2_check_bitmaps_refcounts, check_refblocks,
// compare_refcounts, check_oflag_copied).
// Counting matches QEMU's so the numbers agree (digest §8.2). Tolerant: damage
// is counted, only what QEMU cannot open or read is 'cannot-check'.
import { u64Table, type ByteReader } from '../decode/byte-reader.js';
import { bitmapTableEntryOffsetMask, bitmapTableEntryValid, loadBitmaps, type Bitmap } from '../decode/bitmaps.js';
import { DecodeError } from '../decode/decode-error.js';
import { decodeHeader, type Header } from '../decode/header.js';
import { allocatedAndZero, bitmapAllocMask, l2EntryBytes } from '../decode/extended-l2.js';
import * as E from '../decode/l2-entry.js';
import { snapshotL1EntriesMax } from '../decode/limits.js';
import { refcountEntry } from '../decode/refcounts.js';
import { decodeSnapshotTable, type SnapshotTable } from '../decode/snapshot-table.js';
import { verdictOf, type CheckReport } from './report.js';

interface Tally {
  corruptions: number;
  leaks: number;
  checkErrors: number;
  allocated: number;
  fragmented: number;
  compressed: number;
  readonly messages: string[];
}

/** BDRV_MAX_LENGTH: INT64_MAX aligned down to 1 GiB; QEMU reads nothing past it. */
const blockLayerMaxLength = ((1n << 63n) - 1n) & ~((1n << 30n) - 1n);

function readable(offset: bigint, length: number): boolean {
  return offset + BigInt(length) <= blockLayerMaxLength;
}

export function checkImage(reader: ByteReader): CheckReport {
  return checkWith(reader, new Map()).report;
}

/** One refcount the checker found wrong: what the file says, what the references need. */
export interface RefcountMismatch {
  readonly cluster: number;
  readonly refcount: bigint;
  readonly reference: bigint;
}

/** What a repair needs to know of a check besides its report (none of it when the check could not run). */
export interface CheckDetails {
  readonly report: CheckReport;
  readonly mismatches: readonly RefcountMismatch[];
  /** Corruptions check_refblocks counted (a bad refcount table entry or refcount block): `-r all` rebuilds the refcount structures then. */
  readonly refblockErrors: number;
  /** Snapshot table entries QEMU reads as incomplete (each a corruption; `-r all` completes them). */
  readonly snapshotEntriesIncomplete: number;
  /**
   * OFLAG_COPIED errors (each a corruption) on a cluster that exactly one
   * reference reaches: the flag is stale but harmless, since a write through
   * it can change no other view. `check -r leaks` repairs them (the leak under
   * a set flag first). A fault inside a snapshot operation may leave them
   * (docs/semantics.md, "Faults").
   */
  readonly copiedStale: number;
}

/**
 * The checker with some clusters' refcounts taken from `refcountOverrides`
 * instead of the file (a repair's result: repair-report.ts), and the refcount
 * mismatches it found.
 */
export function checkWith(reader: ByteReader, refcountOverrides: ReadonlyMap<number, bigint>): CheckDetails {
  let header: Header;
  let bitmaps: readonly Bitmap[];
  let snapshots: SnapshotTable;
  try {
    header = decodeHeader(reader);
    bitmaps = loadBitmaps(reader, header);
  } catch (error) {
    return { report: cannotCheck(error, 'Could not open'), mismatches: [], refblockErrors: 0, snapshotEntriesIncomplete: 0, copiedStale: 0 };
  }
  try {
    snapshots = decodeSnapshotTable(reader, header);
  } catch (error) {
    return { report: withBacking(cannotCheck(error, 'Check failed (snapshot table)'), header), mismatches: [], refblockErrors: 0, snapshotEntriesIncomplete: 0, copiedStale: 0 };
  }
  const checker = new Checker(reader, header, snapshots, bitmaps, refcountOverrides);
  try {
    return { report: withBacking(checker.run(), header), mismatches: checker.mismatches, refblockErrors: checker.refblockErrors, snapshotEntriesIncomplete: snapshots.incompleteEntries, copiedStale: checker.copiedStale };
  } catch (error) {
    return { report: withBacking(cannotCheck(error, 'Check failed'), header), mismatches: [], refblockErrors: 0, snapshotEntriesIncomplete: 0, copiedStale: 0 };
  }
}

/** The report names the backing file the header stores, for the caller to open (report.ts). */
function withBacking(report: CheckReport, header: Header): CheckReport {
  if (header.backingFile === undefined) return report;
  return { ...report, backingFile: header.backingFile, ...(header.backingFormat === undefined ? {} : { backingFormat: header.backingFormat }) };
}

function cannotCheck(error: unknown, what: string): CheckReport {
  if (!(error instanceof DecodeError)) throw error;
  const failure = `${what}: ${error.message}`;
  return { verdict: 'cannot-check', corruptions: 0, leaks: 0, checkErrors: 1, messages: [failure], failure };
}

class Checker {
  private readonly cs: number;
  private readonly bits: number;
  private readonly refcountMax: bigint;
  /** In-memory refcount table: computed references per host cluster. */
  private readonly imrt = new Map<number, bigint>();
  private nbClusters: number;
  private readonly reftable: bigint[];
  private readonly refblocks = new Map<bigint, Uint8Array>();
  private readonly t: Tally = { corruptions: 0, leaks: 0, checkErrors: 0, allocated: 0, fragmented: 0, compressed: 0, messages: [] };
  readonly mismatches: RefcountMismatch[] = [];
  refblockErrors = 0;
  copiedStale = 0;

  constructor(
    private readonly reader: ByteReader,
    private readonly h: Header,
    private readonly snapshots: SnapshotTable,
    private readonly bitmaps: readonly Bitmap[],
    private readonly refcountOverrides: ReadonlyMap<number, bigint>,
  ) {
    this.cs = h.clusterSize;
    this.bits = 2 ** h.refcountOrder;
    this.refcountMax = (1n << BigInt(this.bits)) - 1n;
    this.nbClusters = Math.ceil(reader.size / this.cs);
    const entries = (h.refcountTableClusters * this.cs) / 8;
    this.reftable = u64Table(this.readAt(BigInt(h.refcountTableOffset), entries * 8), entries);
  }

  run(): CheckReport {
    const t = this.t;
    t.corruptions += this.snapshots.incompleteEntries;
    this.calculateRefcounts();
    const highest = this.compareRefcounts();
    this.checkOflagCopied();
    return {
      verdict: verdictOf(t),
      corruptions: t.corruptions,
      leaks: t.leaks,
      checkErrors: t.checkErrors,
      imageEndOffset: (highest + 1) * this.cs,
      totalClusters: Math.ceil(this.h.size / this.cs),
      allocatedClusters: t.allocated,
      fragmentedClusters: t.fragmented,
      compressedClusters: t.compressed,
      messages: t.messages,
    };
  }

  private corrupt(message: string): void {
    this.t.corruptions++;
    this.t.messages.push(message);
  }

  /**
   * Past EOF reads as zeros, up to the block layer's limit; a read past that
   * fails with EIO in QEMU (bdrv_check_request), which ends the check.
   */
  private readAt(offset: bigint, length: number): Uint8Array {
    if (!readable(offset, length)) throw new DecodeError('read offset', `0x${offset.toString(16)}`, `+ ${length} <= BDRV_MAX_LENGTH 0x${blockLayerMaxLength.toString(16)}`);
    return offset >= BigInt(this.reader.size) ? new Uint8Array(length) : this.reader.read(Number(offset), length);
  }

  /** qcow2_inc_refcounts_imrt. */
  private inc(offset: bigint, size: bigint): void {
    if (size <= 0n) return;
    if (offset + size - BigInt(this.reader.size) >= BigInt(this.cs)) {
      this.corrupt(`ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x${offset.toString(16)} size 0x${size.toString(16)}`);
      return;
    }
    const cs = BigInt(this.cs);
    for (let c = Number(offset / cs); c <= Number((offset + size - 1n) / cs); c++) {
      const n = this.imrt.get(c) ?? 0n;
      if (n === this.refcountMax) {
        this.corrupt(`ERROR: overflow cluster offset=0x${(BigInt(c) * cs).toString(16)}`);
        continue;
      }
      this.imrt.set(c, n + 1n);
      if (c >= this.nbClusters) this.nbClusters = c + 1;
    }
  }

  private calculateRefcounts(): void {
    const h = this.h;
    this.inc(0n, BigInt(this.cs));
    this.checkL1(BigInt(h.l1TableOffset), h.l1Size, true);
    for (const s of this.snapshots.entries) {
      if (s.l1TableOffset % BigInt(this.cs) !== 0n) {
        this.corrupt(`ERROR snapshot ${s.id} (${s.name}) l1_offset=0x${s.l1TableOffset.toString(16)}: L1 table is not cluster aligned; snapshot table entry corrupted`);
        continue;
      }
      if (s.l1Size > snapshotL1EntriesMax) {
        this.corrupt(`ERROR snapshot ${s.id} (${s.name}) l1_size=0x${s.l1Size.toString(16)}: L1 table is too large; snapshot table entry corrupted`);
        continue;
      }
      this.checkL1(s.l1TableOffset, s.l1Size, false);
    }
    this.inc(BigInt(h.snapshotsOffset), BigInt(this.snapshots.byteSize));
    this.inc(BigInt(h.refcountTableOffset), BigInt(this.reftable.length * 8));
    this.checkBitmaps();
    this.checkRefblocks();
  }

  /**
   * qcow2_check_bitmaps_refcounts: the directory, each bitmap table and each
   * data cluster are references. A table with a bad entry (only a bitmap in
   * use gets this far: open refuses the others) ends the check ("Check failed").
   */
  private checkBitmaps(): void {
    const ext = this.h.bitmaps;
    if (ext === undefined) return;
    this.inc(BigInt(ext.directoryOffset), BigInt(ext.directorySize));
    for (const bm of this.bitmaps) {
      this.inc(BigInt(bm.tableOffset), BigInt(bm.tableSize * 8));
      const table = u64Table(this.readAt(BigInt(bm.tableOffset), bm.tableSize * 8), bm.tableSize);
      if (!table.every((entry) => bitmapTableEntryValid(entry, this.cs))) {
        throw new DecodeError(`bitmap '${bm.name}' table`, `at 0x${bm.tableOffset.toString(16)}`, 'valid entries (bitmap_table_load)', bm.tableOffset);
      }
      for (const entry of table) {
        const offset = entry & bitmapTableEntryOffsetMask;
        if (offset !== 0n) this.inc(offset, BigInt(this.cs));
      }
    }
  }

  private checkL1(offset: bigint, size: number, active: boolean): void {
    if (size === 0) return;
    this.inc(offset, BigInt(size * 8));
    for (const entry of u64Table(this.readAt(offset, size * 8), size)) {
      // check_refcounts_l1 skips only all-zero entries: one with reserved bits
      // but offset 0 is counted, and QEMU then reads cluster 0 as its L2 table.
      if (entry === 0n) continue;
      const l2Offset = entry & E.l1eOffsetMask;
      if ((entry & E.l1eReservedMask) !== 0n) this.corrupt(`ERROR found L1 entry with reserved bits set: ${entry.toString(16)}`);
      this.inc(l2Offset, BigInt(this.cs));
      if (l2Offset % BigInt(this.cs) !== 0n) this.corrupt(`ERROR l2_offset=${l2Offset.toString(16)}: Table is not cluster aligned; L1 entry corrupted`);
      this.checkL2(l2Offset, active);
    }
  }

  /**
   * An L2 table's entries with their subcluster bitmaps (0 without extended L2),
   * as QEMU's get_l2_entry / get_l2_bitmap read them.
   */
  private l2Entries(l2Offset: bigint): { entry: bigint; bitmap: bigint }[] {
    const words = u64Table(this.readAt(l2Offset, this.cs), this.cs / 8);
    const stride = l2EntryBytes(this.h.extendedL2) / 8;
    const out: { entry: bigint; bitmap: bigint }[] = [];
    for (let w = 0; w < words.length; w += stride) out.push({ entry: words[w]!, bitmap: stride === 1 ? 0n : words[w + 1]! });
    return out;
  }

  /** check_refcounts_l2, with its extended-L2 checks of the subcluster bitmap. */
  private checkL2(l2Offset: bigint, active: boolean): void {
    const cs = BigInt(this.cs);
    let nextContiguous = 0n;
    this.l2Entries(l2Offset).forEach(({ entry, bitmap }, i) => {
      const kind = E.classifyL2Entry(entry, this.h.extendedL2);
      if (kind !== 'compressed' && (entry & E.l2eStdReservedMask) !== 0n) this.corrupt(`ERROR found l2 entry with reserved bits set: ${entry.toString(16)}`);
      switch (kind) {
        case 'compressed': {
          const range = E.compressedRange(entry & ~E.oflagCopied, this.h.clusterBits);
          if ((entry & E.oflagCopied) !== 0n) this.corrupt(`ERROR: coffset=0x${range.start.toString(16)}: copied flag must never be set for compressed clusters`);
          // QEMU counts no reference for such an entry: its stream's clusters leak.
          if (bitmap !== 0n) return this.corrupt(`ERROR compressed cluster ${i} with non-zero subcluster allocation bitmap, entry=0x${entry.toString(16)}`);
          this.inc(range.start, range.length);
          if (active) {
            this.t.allocated++;
            this.t.compressed++;
            this.t.fragmented++;
          }
          break;
        }
        case 'normal':
        case 'zero-alloc': {
          const offset = entry & E.l2eOffsetMask;
          if (allocatedAndZero(bitmap)) this.corrupt(`ERROR offset=${offset.toString(16)}: Allocated cluster has corrupted subcluster allocation bitmap`);
          if (offset % cs !== 0n) {
            const containsData = this.h.extendedL2 ? (bitmap & bitmapAllocMask) !== 0n : kind === 'normal';
            this.corrupt(`ERROR offset=${offset.toString(16)}: ${containsData ? 'Data cluster' : 'Preallocated cluster'} is not properly aligned; L2 entry corrupted.`);
          }
          if (active) {
            this.t.allocated++;
            if (nextContiguous !== 0n && offset !== nextContiguous) this.t.fragmented++;
            nextContiguous = offset + cs;
          }
          this.inc(offset, cs);
          break;
        }
        case 'unallocated':
          if ((bitmap & bitmapAllocMask) !== 0n) this.corrupt('ERROR: Unallocated cluster has non-zero subcluster allocation map');
          break;
        case 'zero-plain':
          break;
        default: {
          const never: never = kind;
          throw new Error(`unknown entry kind ${String(never)}`);
        }
      }
    });
  }

  private checkRefblocks(): void {
    const before = this.t.corruptions;
    this.reftable.forEach((entry, i) => {
      const offset = entry & E.reftOffsetMask;
      if ((entry & E.reftReservedMask) !== 0n) return this.corrupt(`ERROR refcount table entry ${i} has reserved bits set`);
      if (offset % BigInt(this.cs) !== 0n) return this.corrupt(`ERROR refcount block ${i} is not cluster aligned; refcount table entry corrupted`);
      const cluster = offset / BigInt(this.cs);
      if (cluster >= BigInt(this.nbClusters)) return this.corrupt(`ERROR refcount block ${i} is outside image`);
      if (offset === 0n) return;
      this.inc(offset, BigInt(this.cs));
      const n = this.imrt.get(Number(cluster)) ?? 0n;
      if (n !== 1n) this.corrupt(`ERROR refcount block ${i} refcount=${n}`);
    });
    this.refblockErrors = this.t.corruptions - before;
  }

  /** qcow2_get_refcount: undefined where QEMU fails with -EIO (unaligned refblock). */
  private onDisk(cluster: number): bigint | undefined {
    const repaired = this.refcountOverrides.get(cluster);
    if (repaired !== undefined) return repaired;
    const blockEntries = (this.cs * 8) / this.bits;
    const entry = this.reftable[Math.floor(cluster / blockEntries)];
    if (entry === undefined) return 0n;
    const offset = entry & E.reftOffsetMask;
    if (offset === 0n) return 0n;
    if (offset % BigInt(this.cs) !== 0n || !readable(offset, this.cs)) return undefined;
    let block = this.refblocks.get(offset);
    if (block === undefined) {
      block = this.readAt(offset, this.cs);
      this.refblocks.set(offset, block);
    }
    return refcountEntry(block, cluster % blockEntries, this.bits);
  }

  private compareRefcounts(): number {
    let highest = 0;
    for (let i = 0; i < this.nbClusters; i++) {
      const disk = this.onDisk(i);
      if (disk === undefined) {
        this.t.checkErrors++;
        this.t.messages.push(`Can't get refcount for cluster ${i}: Input/output error`);
        continue;
      }
      const computed = this.imrt.get(i) ?? 0n;
      if (disk > 0n || computed > 0n) highest = i;
      if (disk === computed) continue;
      this.mismatches.push({ cluster: i, refcount: disk, reference: computed });
      this.t.messages.push(`${disk < computed ? 'ERROR' : 'Leaked'} cluster ${i} refcount=${disk} reference=${computed}`);
      if (disk < computed) this.t.corruptions++;
      else this.t.leaks++;
    }
    return highest;
  }

  private checkOflagCopied(): void {
    const h = this.h;
    const l1 = u64Table(this.readAt(BigInt(h.l1TableOffset), h.l1Size * 8), h.l1Size);
    l1.forEach((l1Entry, i) => {
      const l2Offset = l1Entry & E.l1eOffsetMask;
      if (l2Offset === 0n) return;
      const tableRefcount = this.onDiskAt(l2Offset);
      if (tableRefcount !== undefined && (tableRefcount === 1n) !== ((l1Entry & E.oflagCopied) !== 0n)) {
        this.corruptCopied(`ERROR OFLAG_COPIED L2 cluster: l1_index=${i} l1_entry=${l1Entry.toString(16)} refcount=${tableRefcount}`, l2Offset);
      }
      for (const { entry } of this.l2Entries(l2Offset)) {
        const kind = E.classifyL2Entry(entry, this.h.extendedL2);
        if (kind !== 'normal' && kind !== 'zero-alloc') continue;
        const refcount = this.onDiskAt(entry & E.l2eOffsetMask);
        if (refcount === undefined) continue;
        if ((refcount === 1n) !== ((entry & E.oflagCopied) !== 0n)) {
          this.corruptCopied(`ERROR OFLAG_COPIED data cluster: l2_entry=${entry.toString(16)} refcount=${refcount}`, entry & E.l2eOffsetMask);
        }
      }
    });
  }

  /** An OFLAG_COPIED corruption; stale (copiedStale) when one reference reaches the cluster at `offset`. */
  private corruptCopied(message: string, offset: bigint): void {
    this.corrupt(message);
    const cluster = offset / BigInt(this.cs);
    if (cluster <= BigInt(Number.MAX_SAFE_INTEGER) && this.imrt.get(Number(cluster)) === 1n) this.copiedStale++;
  }

  private onDiskAt(offset: bigint): bigint | undefined {
    const cluster = offset / BigInt(this.cs);
    return cluster > BigInt(Number.MAX_SAFE_INTEGER) ? 0n : this.onDisk(Number(cluster));
  }
}
