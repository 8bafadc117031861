// Opening an image: header, extensions, every table validated (limits.ts) before
// anything is sized by it; an image that fails validation is never written.
// A read-only open accepts every image QEMU's qcow2_do_open accepts: tables that
// lie past the end of the file read as zeros, and damaged entries are reported
// by the read that uses them (FaultPolicy 'on-access'). A read-write open is
// stricter where that is safer: it refuses them before anything is written, and
// its message says so.
import type { BlockFile } from './io/block-file.js';
import { TrackedFile } from './io/tracked-file.js';
import type { ImageState, WallClock } from './state.js';
import { Qcow2Error, Qcow2FormatError, stricterThanQemu, type FaultPolicy } from './errors.js';
import { geometry, sizeToL1 } from './geometry.js';
import { decodeHeader, headerClusterBits, headerProbeBytes } from './format/header.js';
import { decodeBackingName, decodeExtensions } from './format/header-extensions.js';
import { decodeL1, L1Table } from './format/l1-table.js';
import { decodeReftable } from './format/refcount-table.js';
import { decodeSnapshotTable } from './format/snapshot-table.js';
import { Refcounts } from './refcount.js';
import { ClusterMap } from './cluster-map.js';
import { flushMetadata, writeHeader } from './flush.js';
import {
  autoclearBitmaps,
  compatLazyRefcounts,
  incompatCorrupt,
  incompatDirty,
  incompatExtendedL2,
  l1SizeBytesMax,
  l1TableFields,
  reftableFields,
  reftableSizeBytesMax,
  snapshotExtraDataBytesMax,
  snapshotsCountMax,
  snapshotTableBytesMax,
  snapshotTableFields,
  validateTable,
} from './limits.js';
import { repairRefcounts } from './repair.js';
import { dropBitmapsForWriting, loadBitmaps } from './bitmaps.js';

export interface OpenConstraints {
  readOnly: boolean;
  /** Read-write only: allow the open of an image with bitmaps by dropping them (see bitmaps.ts). */
  dropBitmaps?: boolean | undefined;
  l2CacheEntries?: number | undefined;
  refcountCacheEntries?: number | undefined;
  clock: WallClock;
}

/** Default cache sizes: a fixed memory budget, at least a few tables. */
const l2CacheBytes = 8 * 1024 * 1024;
const refcountCacheBytes = 2 * 1024 * 1024;

function cacheEntries(requested: number | undefined, budget: number, clusterSize: number, what: string): number {
  if (requested !== undefined) {
    if (!Number.isSafeInteger(requested) || requested < 2) throw new Qcow2Error('invalid-argument', `${what} must be an integer >= 2, got ${requested}`);
    return requested;
  }
  return Math.max(4, Math.min(1024, Math.floor(budget / clusterSize)));
}

export async function openState(rawFile: BlockFile, c: OpenConstraints): Promise<ImageState> {
  const fileLength = await rawFile.length();
  const file = new TrackedFile(rawFile, fileLength);
  const cs = 2 ** headerClusterBits(await file.pread(0, headerProbeBytes));
  const cluster0 = await file.pread(0, cs);
  const policy: FaultPolicy = c.readOnly ? 'on-access' : 'at-open';
  const header = decodeHeader(cluster0, fileLength, policy);
  const ext = decodeExtensions(cluster0, header);
  const backingName = decodeBackingName(cluster0, header);
  if (!c.readOnly && (header.incompatibleFeatures & incompatCorrupt) !== 0n) {
    throw new Qcow2Error('corrupt', 'image has the corrupt bit set; it can only be opened read-only');
  }
  const g = geometry(header.version, header.clusterBits, header.refcountOrder, (header.incompatibleFeatures & incompatExtendedL2) !== 0n);
  // QEMU reads past the end of the file as zeros; only a read-write open asks that tables lie inside it.
  const tablesInside = c.readOnly ? undefined : fileLength;
  validateTable(header.l1TableOffset, header.l1Size, 8, l1SizeBytesMax, l1TableFields, cs, tablesInside);
  if (header.l1Size < sizeToL1(g, header.size)) {
    throw new Qcow2FormatError('l1_size', header.l1Size, `at least ${sizeToL1(g, header.size)} entries for size ${header.size}`, 36);
  }
  const reftableEntries = (header.refcountTableClusters * cs) / 8;
  validateTable(header.refcountTableOffset, reftableEntries, 8, reftableSizeBytesMax, reftableFields(cs), cs, tablesInside);
  if (header.nbSnapshots > snapshotsCountMax) {
    throw new Qcow2FormatError('nb_snapshots', header.nbSnapshots, `at most ${snapshotsCountMax}`, 60);
  }
  validateTable(header.snapshotsOffset, header.nbSnapshots, 40, snapshotTableBytesMax, snapshotTableFields, cs, tablesInside);
  const l1 = header.l1Size > 0 ? decodeL1(await file.pread(header.l1TableOffset, header.l1Size * 8), header.l1Size, cs, header.l1TableOffset, policy) : new L1Table(0);
  const reftable = decodeReftable(await file.pread(header.refcountTableOffset, reftableEntries * 8), reftableEntries, cs, header.refcountTableOffset, policy);
  if (!c.readOnly && reftable[0] === 0) throw new Qcow2Error('corrupt', `the refcount table does not cover the header cluster; ${stricterThanQemu}`);
  const { entries: snapshots, bytes: snapshotTableBytes } = await readSnapshotTable(file, header.snapshotsOffset, header.nbSnapshots, tablesInside, policy);
  const bitmaps = await loadBitmaps(file, header, ext);
  const dropped = !c.readOnly && dropBitmapsForWriting(header, ext, bitmaps, c.dropBitmaps ?? false);
  const refcounts = new Refcounts(file, g, reftable, header.refcountTableOffset, header.refcountTableClusters,
    cacheEntries(c.refcountCacheEntries, refcountCacheBytes, cs, 'refcountCacheEntries'));
  // The L2 cache's eviction hook flushes the whole image: it needs the state built below.
  const holder: { s?: ImageState } = {};
  const map = new ClusterMap(file, g, refcounts, l1, header.l1TableOffset,
    cacheEntries(c.l2CacheEntries, l2CacheBytes, cs, 'l2CacheEntries'), () => flushMetadata(must(holder.s)));
  refcounts.onFreed = (offset) => map.l2Cache.drop(offset);
  refcounts.flushAll = () => flushMetadata(must(holder.s));
  const s: ImageState = {
    file, g, header, ext, backingName, backing: undefined, refcounts, map, snapshots, snapshotTableBytes,
    bitmaps: dropped ? [] : bitmaps,
    readOnly: c.readOnly, headerDirty: false, headerRebuild: false,
    lazyRefcounts: (header.compatibleFeatures & compatLazyRefcounts) !== 0n,
    clock: c.clock,
  };
  holder.s = s;
  map.onL1Moved = () => (s.headerDirty = true);
  if (!c.readOnly) {
    // Each of these rebuilds cluster 0 whole, as qcow2_do_open's update_header
    // and qcow2_mark_clean do: dropped or ignored bitmaps leave the header.
    s.headerRebuild = dropped || ext.ignoredBitmaps === true;
    if ((header.incompatibleFeatures & incompatDirty) !== 0n) {
      s.dirtyRepair = await repairRefcounts(s);
      header.incompatibleFeatures &= ~incompatDirty;
      s.headerRebuild = true;
    }
    if ((header.autoclearFeatures & ~autoclearBitmaps) !== 0n) {
      // Autoclear features we do not maintain are cleared before writing, as
      // QEMU does; bit 0 is left only when there are no bitmaps it could make stale.
      header.autoclearFeatures &= autoclearBitmaps;
      s.headerRebuild = true;
    }
    if (s.headerRebuild || s.headerDirty) await writeHeader(s);
  }
  return s;
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Qcow2Error('io', 'image state used before it was opened');
  return value;
}

/**
 * Read the snapshot table entry by entry: its byte size is only known by walking
 * it. With `fileLength` (read-write), every entry must lie inside the file.
 */
async function readSnapshotTable(file: BlockFile, offset: number, count: number, fileLength: number | undefined, policy: FaultPolicy) {
  if (count === 0) return { entries: [], bytes: 0 };
  let at = 0;
  for (let i = 0; i < count; i++) {
    at = (at + 7) & ~7;
    const fixed = new DataView((await file.pread(offset + at, 40)).buffer);
    const extraDataSize = fixed.getUint32(36);
    if (extraDataSize > snapshotExtraDataBytesMax) {
      throw new Qcow2FormatError(`snapshot ${i} extra_data_size`, extraDataSize, `at most ${snapshotExtraDataBytesMax}`, offset + at + 36);
    }
    at += 40 + extraDataSize + fixed.getUint16(12) + fixed.getUint16(14);
    if (at > snapshotTableBytesMax) throw new Qcow2FormatError('snapshot table size', at, `at most ${snapshotTableBytesMax}`, offset);
    if (fileLength !== undefined && offset + at > fileLength) {
      throw new Qcow2FormatError(`snapshot ${i}`, `ends at byte ${offset + at}`, `inside the file of ${fileLength} bytes; ${stricterThanQemu}`, offset);
    }
  }
  return { entries: decodeSnapshotTable(await file.pread(offset, at), count, offset, policy), bytes: at };
}
