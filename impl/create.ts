// Creating an image with QEMU's layout (digest §7.8): header, refcount table,
// refcount blocks, then the L1 table (only its used bytes are written).
import type { BlockFile } from './io/block-file.js';
import type { Header } from './format/header.js';
import { Qcow2Error } from './errors.js';
import { assert } from './assert.js';
import { geometry, sizeToL1 } from './geometry.js';
import { encodeCluster0 } from './format/header-extensions.js';
import { encodeReftable } from './format/refcount-table.js';
import { RefcountBlock } from './format/refcount-block.js';
import {
  backingNameBytesMax,
  clusterBitsMax,
  clusterBitsMin,
  compatLazyRefcounts,
  compressionTypeZlib,
  compressionTypeZstd,
  extendedL2ClusterBitsMin,
  incompatCompression,
  incompatExtendedL2,
  l1SizeBytesMax,
} from './limits.js';

export interface CreateOptions {
  /** Virtual size in bytes; with a backing file it defaults to the backing file's size (rounded up to 512). */
  size?: number;
  /** qemu-img create -b: the backing file name as stored, resolved against the new image's directory. */
  backingFile?: string;
  /** qemu-img create -F: required with backingFile (QEMU 7.2 refuses to create without it). */
  backingFormat?: 'qcow2' | 'raw';
  clusterSize?: number;
  refcountBits?: number;
  compat?: '0.10' | '1.1';
  lazyRefcounts?: boolean;
  /** 'zlib' (default) or 'zstd' (compat 1.1 only: incompatible bit 3). */
  compressionType?: 'zlib' | 'zstd';
  /** Extended L2 entries, 32 subclusters per cluster (incompatible bit 4): compat 1.1, clusters of 16 KiB or more. */
  extendedL2?: boolean;
}

export interface QualifiedCreateOptions {
  size: number;
  clusterBits: number;
  refcountOrder: number;
  version: 2 | 3;
  lazyRefcounts: boolean;
  compressionType: number;
  extendedL2: boolean;
  backingFile: string | undefined;
  backingFormat: 'qcow2' | 'raw' | undefined;
}

/** Options with the size settled (createFile reads it from the backing file when absent). */
export type SizedCreateOptions = CreateOptions & { size: number };

/** The first 512-multiple at or above a backing file's size (qemu-img create's default size). */
export function sizeFromBacking(bytes: number): number {
  return Math.ceil(bytes / 512) * 512;
}

export function qualifyCreateOptions(o: SizedCreateOptions): QualifiedCreateOptions {
  const bad = (what: string) => new Qcow2Error('invalid-argument', what);
  if (!Number.isSafeInteger(o.size) || o.size < 0 || o.size % 512 !== 0) throw bad(`size ${o.size} is not a non-negative multiple of 512`);
  if (o.backingFile !== undefined) {
    if (o.backingFile === '') throw bad('backing file name is empty');
    if (o.backingFormat === undefined) throw bad(`backing file '${o.backingFile}' specified without backing format`);
    if (o.backingFormat !== 'qcow2' && o.backingFormat !== 'raw') throw bad(`backing format ${String(o.backingFormat)} is not qcow2 or raw`);
    const nameBytes = new TextEncoder().encode(o.backingFile).length;
    if (nameBytes > backingNameBytesMax) throw bad(`backing file name of ${nameBytes} bytes is longer than ${backingNameBytesMax}`);
  } else if (o.backingFormat !== undefined) {
    throw bad('a backing format needs a backing file');
  }
  const clusterSize = o.clusterSize ?? 65536;
  const clusterBits = Math.log2(clusterSize);
  if (!Number.isInteger(clusterBits) || clusterBits < clusterBitsMin || clusterBits > clusterBitsMax) {
    throw bad(`cluster size ${clusterSize} is not a power of two between ${2 ** clusterBitsMin} and ${2 ** clusterBitsMax}`);
  }
  const refcountBits = o.refcountBits ?? 16;
  const refcountOrder = Math.log2(refcountBits);
  if (!Number.isInteger(refcountOrder) || refcountOrder < 0 || refcountOrder > 6) throw bad(`refcount bits ${refcountBits} is not 1, 2, 4, …, 64`);
  const compat = o.compat ?? '1.1';
  if (compat !== '0.10' && compat !== '1.1') throw bad(`compat ${String(compat)} is not 0.10 or 1.1`);
  const version = compat === '0.10' ? 2 : 3;
  const lazyRefcounts = o.lazyRefcounts ?? false;
  if (version === 2 && refcountBits !== 16) throw bad('version 2 images (compat 0.10) have 16-bit refcounts only');
  if (version === 2 && lazyRefcounts) throw bad('lazy refcounts need compat 1.1');
  const compression = o.compressionType ?? 'zlib';
  if (compression !== 'zlib' && compression !== 'zstd') throw bad(`compression type ${String(compression)} is not zlib or zstd`);
  if (version === 2 && compression !== 'zlib') throw bad('compression types other than zlib need compat 1.1');
  const compressionType = compression === 'zstd' ? compressionTypeZstd : compressionTypeZlib;
  const extendedL2 = o.extendedL2 ?? false;
  // qcow2_co_create's words.
  if (extendedL2 && version === 2) throw bad('Extended L2 entries are only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  if (extendedL2 && clusterBits < extendedL2ClusterBitsMin) throw bad(`Extended L2 entries are only supported with cluster sizes of at least ${2 ** extendedL2ClusterBitsMin} bytes`);
  return { size: o.size, clusterBits, refcountOrder, version, lazyRefcounts, compressionType, extendedL2, backingFile: o.backingFile, backingFormat: o.backingFormat };
}

/** Write a fresh, empty image to `file` (truncated first). */
export async function writeNewImage(file: BlockFile, o: QualifiedCreateOptions): Promise<void> {
  const g = geometry(o.version, o.clusterBits, o.refcountOrder, o.extendedL2);
  const cs = g.clusterSize;
  const l1Size = sizeToL1(g, o.size);
  if (l1Size * 8 > l1SizeBytesMax) throw new Qcow2Error('invalid-argument', `size ${o.size} needs an L1 table over ${l1SizeBytesMax} bytes; use a larger cluster size`);
  const l1Clusters = Math.ceil((l1Size * 8) / cs);
  let blocks = 1;
  let tableClusters = 1;
  for (;;) {
    const used = 1 + tableClusters + blocks + l1Clusters;
    const needBlocks = Math.ceil(used / g.refblockEntriesCount);
    const needTable = Math.ceil((needBlocks * 8) / cs);
    if (needBlocks <= blocks && needTable <= tableClusters) break;
    blocks = Math.max(blocks, needBlocks);
    tableClusters = Math.max(tableClusters, needTable);
  }
  const used = 1 + tableClusters + blocks + l1Clusters;
  const reftable = new Float64Array((tableClusters * cs) / 8);
  for (let b = 0; b < blocks; b++) reftable[b] = (1 + tableClusters + b) * cs;
  const header: Header = {
    version: o.version,
    backingFileOffset: 0,
    backingFileSize: 0,
    clusterBits: o.clusterBits,
    size: o.size,
    cryptMethod: 0,
    l1Size,
    l1TableOffset: l1Size > 0 ? (1 + tableClusters + blocks) * cs : 0,
    refcountTableOffset: cs,
    refcountTableClusters: tableClusters,
    nbSnapshots: 0,
    snapshotsOffset: 0,
    incompatibleFeatures: (o.compressionType === compressionTypeZlib ? 0n : incompatCompression) | (o.extendedL2 ? incompatExtendedL2 : 0n),
    compatibleFeatures: o.lazyRefcounts ? compatLazyRefcounts : 0n,
    autoclearFeatures: 0n,
    refcountOrder: o.refcountOrder,
    headerLength: o.version === 2 ? 72 : 112,
    compressionType: o.compressionType,
    unknownFields: new Uint8Array(0),
  };
  await file.truncate(0);
  await file.pwrite(cs, encodeReftable(reftable));
  for (let b = 0; b < blocks; b++) {
    const block = new RefcountBlock(new Uint8Array(cs), o.refcountOrder);
    for (let c = b * g.refblockEntriesCount; c < Math.min(used, (b + 1) * g.refblockEntriesCount); c++) {
      block.set(c - b * g.refblockEntriesCount, 1);
    }
    await file.pwrite((1 + tableClusters + b) * cs, block.bytes);
  }
  if (l1Size > 0) await file.pwrite(header.l1TableOffset, new Uint8Array(l1Size * 8));
  await file.flush();
  // The header goes last: until it is written the file is not an image.
  const ext = o.backingFormat === undefined ? { unknown: [] } : { backingFormat: o.backingFormat, unknown: [] };
  await file.pwrite(0, encodeCluster0(header, ext, o.backingFile));
  await file.flush();
  assert(used * cs >= (await file.length()), 'the file ends inside the last counted cluster');
}
