// The layout step of the HTML report: every host cluster of an image with the
// roles that reach it, its on-disk refcount, the references a walk of the
// metadata finds (as qemu-img check's calculate_refcounts counts them) and
// what is wrong with it; and per view (active, each snapshot) which guest
// cluster maps to which host cluster. Tolerant like model/check: damage is
// drawn, not refused; only an unreadable header leaves no picture.
import { checkImage, classifyL2Entry, type ByteReader, type EntryKind } from '../../../model/index.js';
import { u64Table } from '../../../model/decode/byte-reader.js';
import { decodeHeader, type Header } from '../../../model/decode/header.js';
import { compressedRange, l1eOffsetMask, l2eOffsetMask, reftOffsetMask } from '../../../model/decode/l2-entry.js';
import { refcountEntry } from '../../../model/decode/refcounts.js';
import { decodeSnapshotTable, type SnapshotEntry } from '../../../model/decode/snapshot-table.js';

/** What a host cluster holds; one name per metadata region, as QEMU's QCow2MetadataOverlap names them, plus data. */
export const clusterRoles = ['header', 'l1', 'l2', 'refcountTable', 'refcountBlock', 'snapshotTable', 'snapshotL1', 'data', 'compressed', 'free'] as const;
export type ClusterRole = (typeof clusterRoles)[number];

/** What is wrong with a host cluster. */
export const clusterMarks = ['leaked', 'referencedTwice', 'overlapping', 'refcountDiffers', 'unexpectedContent'] as const;
export type ClusterMark = (typeof clusterMarks)[number];

export interface HostCluster {
  /** Roles that reach this cluster, without repeats; empty = free. */
  readonly roles: ClusterRole[];
  /** References a metadata walk finds (qemu-img check's computed refcount). */
  references: number;
  readonly marks: Set<ClusterMark>;
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
  /** One per host cluster of the file (and any cluster a table points past its end). */
  readonly clusters: HostCluster[];
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
    const clusters = Array.from({ length: Math.ceil(reader.size / clusterSize) }, () => emptyCluster());
    return { clusterSize, fileSize: reader.size, clusters, refcounts: clusters.map(() => undefined), views: [], findings };
  }
  return new Walker(reader, header, findings).run();
}

function emptyCluster(): HostCluster {
  return { roles: [], references: 0, marks: new Set() };
}

class Walker {
  private readonly cs: number;
  private readonly clusters: HostCluster[];
  private readonly limit: number;
  private readonly blocks = new Map<number, Uint8Array>();

  constructor(
    private readonly reader: ByteReader,
    private readonly h: Header,
    private readonly findings: string[],
  ) {
    this.cs = h.clusterSize;
    const inFile = Math.ceil(reader.size / this.cs);
    this.limit = inFile + clustersPastEndMax;
    this.clusters = Array.from({ length: inFile }, () => emptyCluster());
  }

  run(): ImageLayout {
    const h = this.h;
    this.add(0, this.cs, 'header');
    const views: GuestView[] = [this.view('active', undefined, h.l1TableOffset, h.l1Size, 'l1')];
    let snapshots: readonly SnapshotEntry[] = [];
    try {
      const table = decodeSnapshotTable(this.reader, h);
      snapshots = table.entries;
      this.add(h.snapshotsOffset, table.byteSize, 'snapshotTable');
    } catch (error) {
      this.findings.push(`snapshot table: ${error instanceof Error ? error.message : String(error)}`);
    }
    for (const s of snapshots) {
      const offset = s.l1TableOffset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s.l1TableOffset) : -1;
      if (offset < 0 || offset % this.cs !== 0) continue;
      views.push(this.view(`snapshot ${s.id} (${s.name})`, s.id, offset, s.l1Size, 'snapshotL1'));
    }
    const reftable = this.refcountTable();
    const refcounts = this.clusters.map((_, i) => this.onDisk(reftable, i));
    this.mark(refcounts);
    return { clusterSize: this.cs, fileSize: this.reader.size, header: h, clusters: this.clusters, refcounts, views, findings: this.findings };
  }

  /** Counts one reference to every cluster of [offset, offset + length) under `role`. */
  private add(offset: number, length: number, role: ClusterRole): void {
    if (length <= 0) return;
    const last = Math.min(Math.floor((offset + length - 1) / this.cs), this.limit - 1);
    for (let c = Math.floor(offset / this.cs); c <= last; c++) {
      while (this.clusters.length <= c) this.clusters.push(emptyCluster());
      const cluster = this.clusters[c]!;
      if (!cluster.roles.includes(role)) cluster.roles.push(role);
      cluster.references++;
    }
  }

  private table(offset: number, entriesCount: number): bigint[] {
    const count = Math.min(entriesCount, tableEntriesMax, Math.max(0, Math.ceil((this.reader.size - offset) / 8)));
    return u64Table(this.reader.read(offset, count * 8), count);
  }

  private view(label: string, snapshotId: string | undefined, l1Offset: number, l1Size: number, l1Role: ClusterRole): GuestView {
    this.add(l1Offset, l1Size * 8, l1Role);
    const entriesPerL2 = this.cs / 8;
    const entries: GuestEntry[] = [];
    const l2Clusters: (number | undefined)[] = [];
    this.table(l1Offset, l1Size).forEach((l1Entry, l1Index) => {
      const l2Offset = l1Entry & l1eOffsetMask;
      if (l2Offset === 0n || l2Offset > BigInt(Number.MAX_SAFE_INTEGER)) return l2Clusters.push(undefined);
      const at = Number(l2Offset);
      this.add(at, this.cs, 'l2');
      l2Clusters.push(Math.floor(at / this.cs));
      this.table(at, entriesPerL2).forEach((entry, l2Index) => {
        const kind = classifyL2Entry(entry);
        const guestCluster = l1Index * entriesPerL2 + l2Index;
        if (kind === 'unallocated' || kind === 'zero-plain') {
          if (kind === 'zero-plain') entries.push({ guestCluster, kind });
          return;
        }
        if (kind === 'compressed') {
          const range = compressedRange(entry & ~(1n << 63n), this.h.clusterBits);
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

  private refcountTable(): bigint[] {
    const h = this.h;
    this.add(h.refcountTableOffset, h.refcountTableClusters * this.cs, 'refcountTable');
    const reftable = this.table(h.refcountTableOffset, (h.refcountTableClusters * this.cs) / 8);
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
    this.clusters.forEach((cluster, i) => {
      const stored = refcounts[i];
      const metadataRoles = cluster.roles.filter((r) => r !== 'data' && r !== 'compressed');
      if (cluster.roles.length > 1 && metadataRoles.length > 0) cluster.marks.add('overlapping');
      if (stored === undefined) return;
      if (stored > BigInt(cluster.references)) cluster.marks.add('leaked');
      if (stored < BigInt(cluster.references) && cluster.references > 1) cluster.marks.add('referencedTwice');
      if (stored < BigInt(cluster.references) && cluster.references === 1) cluster.marks.add('refcountDiffers');
    });
  }
}
