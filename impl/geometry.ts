// Derived quantities of an image (digest §1), computed once.
import { assert } from './assert.js';
import { refcountMax } from './format/refcount-block.js';
import { extendedL2ClusterBitsMin, subclustersPerCluster } from './limits.js';

export interface Geometry {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Incompatible bit 4: 16-byte L2 entries, each cluster split into 32 subclusters. */
  readonly extendedL2: boolean;
  /** Bytes of one L2 entry: 16 with extended L2, else 8. */
  readonly l2EntryBytes: number;
  /** Entries per L2 table (cs / l2EntryBytes). */
  readonly l2EntriesCount: number;
  /** Bytes of one subcluster: cs / 32 with extended L2, else the cluster size. */
  readonly subclusterSize: number;
  readonly l2Bits: number;
  readonly refcountOrder: number;
  /** Refcount entries per refcount block. */
  readonly refblockEntriesCount: number;
  readonly refcountMax: number;
}

export function geometry(version: 2 | 3, clusterBits: number, refcountOrder: number, extendedL2 = false): Geometry {
  const clusterSize = 2 ** clusterBits;
  assert(!extendedL2 || (version === 3 && clusterBits >= extendedL2ClusterBitsMin), 'extended L2 entries need version 3 and 512-byte subclusters');
  const l2EntryBytes = extendedL2 ? 16 : 8;
  const refblockEntriesCount = (clusterSize * 8) / (1 << refcountOrder);
  assert(Number.isInteger(refblockEntriesCount) && refblockEntriesCount >= 8, 'a refcount block holds whole entries');
  return {
    version,
    clusterBits,
    clusterSize,
    extendedL2,
    l2EntryBytes,
    l2EntriesCount: clusterSize / l2EntryBytes,
    subclusterSize: extendedL2 ? clusterSize / subclustersPerCluster : clusterSize,
    l2Bits: clusterBits - Math.log2(l2EntryBytes),
    refcountOrder,
    refblockEntriesCount,
    refcountMax: refcountMax(refcountOrder),
  };
}

/** Bytes of guest disk one L1 entry covers. */
export function l1EntryCoverage(g: Geometry): number {
  return g.clusterSize * g.l2EntriesCount;
}

/** QEMU size_to_l1: L1 entries needed for a virtual size. */
export function sizeToL1(g: Geometry, size: number): number {
  return Math.ceil(size / l1EntryCoverage(g));
}

export function clustersFor(g: Geometry, bytes: number): number {
  return Math.ceil(bytes / g.clusterSize);
}
