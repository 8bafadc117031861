// A fresh refcount area (QEMU qcow2_refcount_area): m refcount blocks at the
// start of a range no cluster is counted in, describing themselves and the
// `usedClusters - m` structure clusters laid out right after them.
import type { Geometry } from './geometry.js';
import { assert } from './assert.js';
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
