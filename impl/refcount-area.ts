// A fresh refcount area (QEMU qcow2_refcount_area): m refcount blocks at the
// start of a range no cluster is counted in, describing themselves and the
// `usedClusters - m` structure clusters laid out right after them.
import type { Geometry } from './geometry.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { reftableSizeBytesMax } from './limits.js';
import { RefcountBlock } from './format/refcount-block.js';

export function areaBlocks(g: Geometry, blocksCount: number, usedClusters: number): RefcountBlock[] {
  const R = g.refblockEntriesCount;
  assert(blocksCount >= 1 && usedClusters >= blocksCount, 'an area holds its own blocks');
  assert(usedClusters <= blocksCount * R, 'the area blocks cover every cluster they count');
  const blocks: RefcountBlock[] = [];
  for (let j = 0; j < blocksCount; j++) {
    const block = new RefcountBlock(new Uint8Array(g.clusterSize), g.refcountOrder);
    for (let c = j * R; c < Math.min((j + 1) * R, usedClusters); c++) block.set(c - j * R, 1);
    blocks.push(block);
  }
  return blocks;
}

export interface ReftableGrowth {
  /** Refcount-table index of the area's first block (the area starts at areaIndex * R). */
  readonly areaIndex: number;
  /** Self-describing blocks at the start of the area. */
  readonly blocksCount: number;
  /** Entries of the new table: room for neededIndex and the area, plus 50%, whole clusters. */
  readonly entriesCount: number;
  /** Clusters of the new table, right after the blocks. */
  readonly tableClusters: number;
}

/**
 * The refcount area for a table of `currentEntries` that must reach `neededIndex`:
 * at the start of range max(neededIndex, currentEntries), the fewest blocks that
 * describe themselves and the new table. Throws Qcow2Error('unsupported') past
 * QEMU's table limit (reftableSizeBytesMax).
 */
export function reftableGrowth(g: Geometry, currentEntries: number, neededIndex: number): ReftableGrowth {
  assert(neededIndex >= currentEntries, 'a table grows only for an index past it');
  const R = g.refblockEntriesCount;
  const perCluster = g.clusterSize / 8;
  const areaIndex = Math.max(neededIndex, currentEntries);
  let blocksCount = 1;
  let entriesCount = 0;
  let tableClusters = 0;
  for (;;) {
    entriesCount = Math.ceil(Math.max(areaIndex + blocksCount, neededIndex + 1) * 1.5 / perCluster) * perCluster;
    tableClusters = entriesCount / perCluster;
    if (blocksCount + tableClusters <= blocksCount * R) break;
    blocksCount++;
  }
  if (entriesCount * 8 > reftableSizeBytesMax) {
    throw new Qcow2Error('unsupported', `refcount table would need ${entriesCount} entries (limit ${reftableSizeBytesMax / 8})`);
  }
  return { areaIndex, blocksCount, entriesCount, tableClusters };
}
