// The layout step of the HTML report: every host cluster of an image with the
// roles that reach it, its on-disk refcount, the references a walk of the
// metadata finds (as qemu-img check's calculate_refcounts counts them) and
// what is wrong with it; and per view (active, each snapshot) which guest
// cluster maps to which host cluster. Tolerant like model/check: damage is
// drawn, not refused; only an unreadable header leaves no picture.
import { checkImage, classifyL2Entry, type ByteReader, type EntryKind } from '../../../model/index.js';
import { u64Table } from '../../../model/decode/byte-reader.js';
import { decodeHeader, type Header } from '../../../model/decode/header.js';
import { compressedRange, l1eOffsetMask, l2eOffsetMask, oflagCopied, reftOffsetMask } from '../../../model/decode/l2-entry.js';
import { refcountEntry } from '../../../model/decode/refcounts.js';
import { decodeSnapshotTable, type SnapshotEntry } from '../../../model/decode/snapshot-table.js';
import { bitmapTableEntryOffsetMask, bitmapTableEntryValid, loadBitmaps } from '../../../model/decode/bitmaps.js';

/**
 * What a host cluster holds; one name per metadata region, as QEMU's
 * QCow2MetadataOverlap names them (bitmapDirectory is its QCOW2_OL_BITMAP_DIRECTORY),
 * plus the bitmaps' tables and data clusters, guest data and free.
 */
export const clusterRoles = [
  'header', 'l1', 'l2', 'refcountTable', 'refcountBlock', 'snapshotTable', 'snapshotL1', 'bitmapDirectory', 'bitmapTable', 'bitmapData', 'data', 'compressed', 'free',
] as const;
export type ClusterRole = (typeof clusterRoles)[number];

/** What is wrong with a host cluster. */
export const clusterMarks = ['leaked', 'referencedTwice', 'overlapping', 'refcountDiffers', 'unexpectedContent'] as const;
export type ClusterMark = (typeof clusterMarks)[number];

/**
 * Roles, marks and references of every host cluster, one bit per role and per
 * mark in typed arrays, so a file of millions of clusters lays out in a few
 * bytes each.
 */
export class HostClusters {
  private readonly roleBits: Uint16Array;
  private readonly markBits: Uint8Array;
  /** References a metadata walk finds per cluster (qemu-img check's computed refcount). */
  readonly references: Uint32Array;
  /** Clusters drawn: the file's, and any a table reaches past its end (at most `capacity`). */
  count: number;

  constructor(count: number, capacity: number) {
    this.roleBits = new Uint16Array(capacity);
    this.markBits = new Uint8Array(capacity);
    this.references = new Uint32Array(capacity);
    this.count = count;
  }

  /** Roles in clusterRoles order; empty = free. */
  roles(cluster: number): ClusterRole[] {
    const bits = this.roleBits[cluster] ?? 0;
    return clusterRoles.filter((_, k) => (bits & (1 << k)) !== 0);
  }

  marks(cluster: number): ClusterMark[] {
    const bits = this.markBits[cluster] ?? 0;
    return clusterMarks.filter((_, k) => (bits & (1 << k)) !== 0);
  }

  /** Bit k set = clusterRoles[k]. */
  roleMask(cluster: number): number {
    return this.roleBits[cluster] ?? 0;
  }

  /** Bit k set = clusterMarks[k] (the page's encoding). */
  markMask(cluster: number): number {
    return this.markBits[cluster] ?? 0;
  }

  /** Counts one reference under `role`; the cluster must be below the capacity. */
  reach(cluster: number, role: ClusterRole): void {
    this.roleBits[cluster]! |= 1 << clusterRoles.indexOf(role);
    this.references[cluster]!++;
    if (cluster >= this.count) this.count = cluster + 1;
  }

  mark(cluster: number, mark: ClusterMark): void {
    if (cluster < this.count) this.markBits[cluster]! |= 1 << clusterMarks.indexOf(mark);
  }
}

export interface GuestEntry {
  readonly guestCluster: number;
  readonly kind: EntryKind;
  /** Host cluster index of the data (normal, zero-alloc, compressed). */
  readonly hostCluster?: number;
}

export interface GuestView {
  /** 'active' or 'snapshot ID (NAME)'. */
  readonly label: string;
  /** Snapshot id; absent for the active view. */
  readonly snapshotId?: string;
  /** Entries that are not unallocated, in guest order. */
  readonly entries: GuestEntry[];
  /** L2 table host cluster per L1 index (undefined = none). */
  readonly l2Clusters: (number | undefined)[];
}

export interface ImageLayout {
  readonly clusterSize: number;
  readonly fileSize: number;
  readonly header?: Header;
  readonly clusters: HostClusters;
  /** On-disk refcount per host cluster; undefined where no refcount block can be read. */
  readonly refcounts: (bigint | undefined)[];
  readonly views: GuestView[];
  /** The checker's diagnostics in qemu-img check's words, or why the header could not be read. */
  readonly findings: string[];
}

/** Host clusters a picture covers at most past the file's end (a table pointing far out draws no billion cells). */
const clustersPastEndMax = 64;
/** Grid unit of a file whose header cannot be read: QEMU's default cluster size. */
const unreadableHeaderClusterSize = 65536;
/** Entries of one table read at most: 32 MiB of L1, QEMU's QCOW_MAX_L1_SIZE. */
const tableEntriesMax = (32 * 1024 * 1024) / 8;

/**
 * Lays out an image (any ByteReader: a buffer, or a file read on demand so big
 * images are never loaded whole); see the file comment. Never throws on damage.
 */
export function imageLayout(reader: ByteReader): ImageLayout {
  const findings = checkImage(reader).messages;
  let header: Header;
  try {
    header = decodeHeader(reader);
  } catch {
    // checkImage's findings already say why the header cannot be read ('Could not open: …').
    const clusterSize = unreadableHeaderClusterSize;
    const count = Math.ceil(reader.size / clusterSize);
    return { clusterSize, fileSize: reader.size, clusters: new HostClusters(count, count), refcounts: new Array<undefined>(count).fill(undefined), views: [], findings };
  }
  return new Walker(reader, header, findings).run();
}

class Walker {
  private readonly cs: number;
  private readonly clusters: HostClusters;
  private readonly blocks = new Map<number, Uint8Array>();

  constructor(
    private readonly reader: ByteReader,
    private readonly h: Header,
    private readonly findings: string[],
  ) {
    this.cs = h.clusterSize;
    const inFile = Math.ceil(reader.size / this.cs);
    this.clusters = new HostClusters(inFile, inFile + clustersPastEndMax);
  }

  run(): ImageLayout {
    const h = this.h;
    this.add(0, this.cs, 'header');
    const views: GuestView[] = [this.view('active', undefined, Number(h.l1TableOffset), h.l1Size, 'l1')];
    let snapshots: readonly SnapshotEntry[] = [];
    try {
      const table = decodeSnapshotTable(this.reader, h);
      snapshots = table.entries;
      this.add(Number(h.snapshotsOffset), table.byteSize, 'snapshotTable');
    } catch (error) {
      this.findings.push(`snapshot table: ${error instanceof Error ? error.message : String(error)}`);
    }
    for (const s of snapshots) {
      const offset = s.l1TableOffset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s.l1TableOffset) : -1;
      if (offset < 0 || offset % this.cs !== 0) continue;
      views.push(this.view(`snapshot ${s.id} (${s.name})`, s.id, offset, s.l1Size, 'snapshotL1'));
    }
    this.bitmaps();
    const reftable = this.refcountTable();
    const refcounts = Array.from({ length: this.clusters.count }, (_, i) => this.onDisk(reftable, i));
    this.mark(refcounts);
    return { clusterSize: this.cs, fileSize: this.reader.size, header: h, clusters: this.clusters, refcounts, views, findings: this.findings };
  }

  /**
   * Counts one reference to every cluster of [offset, offset + length) under
   * `role`. Header offsets arrive as Number(bigint): one past 2^53 is inexact
   * but far past the file, where nothing is drawn or read.
   */
  private add(offset: number, length: number, role: ClusterRole): void {
    if (length <= 0) return;
    const capacity = this.clusters.references.length;
    const last = Math.min(Math.floor((offset + length - 1) / this.cs), capacity - 1);
    for (let c = Math.floor(offset / this.cs); c <= last; c++) this.clusters.reach(c, role);
  }

  private table(offset: number, entriesCount: number): bigint[] {
    const count = Math.min(entriesCount, tableEntriesMax, Math.max(0, Math.ceil((this.reader.size - offset) / 8)));
    return u64Table(this.reader.read(offset, count * 8), count);
  }

  private view(label: string, snapshotId: string | undefined, l1Offset: number, l1Size: number, l1Role: ClusterRole): GuestView {
    this.add(l1Offset, l1Size * 8, l1Role);
    // an extended L2 entry is 16 bytes: the standard word, then the subcluster bitmap (not drawn)
    const wordsPerEntry = this.h.extendedL2 ? 2 : 1;
    const entriesPerL2 = this.cs / 8 / wordsPerEntry;
    const entries: GuestEntry[] = [];
    const l2Clusters: (number | undefined)[] = [];
    this.table(l1Offset, l1Size).forEach((l1Entry, l1Index) => {
      const l2Offset = l1Entry & l1eOffsetMask;
      if (l2Offset === 0n || l2Offset > BigInt(Number.MAX_SAFE_INTEGER)) return l2Clusters.push(undefined);
      const at = Number(l2Offset);
      this.add(at, this.cs, 'l2');
      l2Clusters.push(Math.floor(at / this.cs));
      const words = this.table(at, entriesPerL2 * wordsPerEntry);
      words.filter((_, i) => i % wordsPerEntry === 0).forEach((entry, l2Index) => {
        const kind = classifyL2Entry(entry, this.h.extendedL2);
        const guestCluster = l1Index * entriesPerL2 + l2Index;
        if (kind === 'unallocated' || kind === 'zero-plain') {
          if (kind === 'zero-plain') entries.push({ guestCluster, kind });
          return;
        }
        if (kind === 'compressed') {
          const range = compressedRange(entry & ~oflagCopied, this.h.clusterBits);
          this.add(Number(range.start), Number(range.length), 'compressed');
          return entries.push({ guestCluster, kind, hostCluster: Math.floor(Number(range.start) / this.cs) });
        }
        const host = Number(entry & l2eOffsetMask);
        this.add(host, this.cs, 'data');
        entries.push({ guestCluster, kind, hostCluster: Math.floor(host / this.cs) });
      });
    });
    return { label, ...(snapshotId === undefined ? {} : { snapshotId }), entries, l2Clusters };
  }

  /**
   * The bitmap directory, each bitmap's table and its data clusters, as
   * qcow2_check_bitmaps_refcounts counts them. A directory QEMU would refuse
   * (loadBitmaps throws) draws none of them; the checker's findings say why.
   */
  private bitmaps(): void {
    const ext = this.h.bitmaps;
    if (ext === undefined) return;
    this.add(Number(ext.directoryOffset), Number(ext.directorySize), 'bitmapDirectory');
    let bitmaps;
    try {
      bitmaps = loadBitmaps(this.reader, this.h);
    } catch (error) {
      this.findings.push(`bitmaps: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    for (const bm of bitmaps) {
      this.add(bm.tableOffset, bm.tableSize * 8, 'bitmapTable');
      for (const entry of this.table(bm.tableOffset, bm.tableSize)) {
        // a bitmap in use is loaded without checking its table: draw only the entries QEMU would accept
        const offset = entry & bitmapTableEntryOffsetMask;
        if (offset !== 0n && bitmapTableEntryValid(entry, this.cs) && offset <= BigInt(Number.MAX_SAFE_INTEGER)) this.add(Number(offset), this.cs, 'bitmapData');
      }
    }
  }

  private refcountTable(): bigint[] {
    const h = this.h;
    this.add(Number(h.refcountTableOffset), h.refcountTableClusters * this.cs, 'refcountTable');
    const reftable = this.table(Number(h.refcountTableOffset), (h.refcountTableClusters * this.cs) / 8);
    for (const entry of reftable) {
      const offset = entry & reftOffsetMask;
      if (offset !== 0n && offset <= BigInt(Number.MAX_SAFE_INTEGER)) this.add(Number(offset), this.cs, 'refcountBlock');
    }
    return reftable;
  }

  /** The refcount stored for host cluster `i` (qcow2_get_refcount); undefined where its block is unaligned. */
  private onDisk(reftable: readonly bigint[], i: number): bigint | undefined {
    const bits = 2 ** this.h.refcountOrder;
    const blockEntries = (this.cs * 8) / bits;
    const entry = reftable[Math.floor(i / blockEntries)];
    if (entry === undefined) return 0n;
    const offset = entry & reftOffsetMask;
    if (offset === 0n) return 0n;
    if (offset % BigInt(this.cs) !== 0n || offset > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    let block = this.blocks.get(Number(offset));
    if (block === undefined) {
      block = this.reader.read(Number(offset), this.cs);
      this.blocks.set(Number(offset), block);
    }
    return refcountEntry(block, i % blockEntries, bits);
  }

  /** Leaked: stored refcount above the references; referenced twice: below them; overlapping: two roles. */
  private mark(refcounts: readonly (bigint | undefined)[]): void {
    const dataRoles = (1 << clusterRoles.indexOf('data')) | (1 << clusterRoles.indexOf('compressed'));
    for (let i = 0; i < this.clusters.count; i++) {
      const roles = this.clusters.roleMask(i);
      const severalRoles = (roles & (roles - 1)) !== 0;
      if (severalRoles && (roles & ~dataRoles) !== 0) this.clusters.mark(i, 'overlapping');
      const stored = refcounts[i];
      const references = BigInt(this.clusters.references[i]!);
      if (stored === undefined) continue;
      if (stored > references) this.clusters.mark(i, 'leaked');
      if (stored < references && references > 1n) this.clusters.mark(i, 'referencedTwice');
      if (stored < references && references === 1n) this.clusters.mark(i, 'refcountDiffers');
    }
  }
}
