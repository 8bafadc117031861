// Derived quantities of an image (digest §1), computed once.
import { assert } from './assert.js';
import { refcountMax } from './format/refcount-block.js';

export interface Geometry {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly clusterSize: number;
  /** Entries per L2 table (cs / 8). */
  readonly l2EntriesCount: number;
  readonly l2Bits: number;
  readonly refcountOrder: number;
  /** Refcount entries per refcount block. */
  readonly refblockEntriesCount: number;
  readonly refcountMax: number;
}

export function geometry(version: 2 | 3, clusterBits: number, refcountOrder: number): Geometry {
  const clusterSize = 2 ** clusterBits;
  const refblockEntriesCount = (clusterSize * 8) / (1 << refcountOrder);
  assert(Number.isInteger(refblockEntriesCount) && refblockEntriesCount >= 8, 'a refcount block holds whole entries');
  return {
    version,
    clusterBits,
    clusterSize,
    l2EntriesCount: clusterSize / 8,
    l2Bits: clusterBits - 3,
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
