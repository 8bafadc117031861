// space: the image file does not grow beyond what its live clusters need.
// Refcounts cannot show this kind of leak: an allocator that never reuses freed
// clusters, or that extends the file without allocating, keeps every refcount
// right while the file grows without end.
//
// The bound, checked after every operation (the image is flushed first, so
// clusters freed by earlier operations are reusable):
//
//   fileClusters <= 2 * peakLive + opClustersMax + 8 + reftableGrowths * (refblockEntries + 1)
//
// - fileClusters: ceil(file length / cluster size).
// - peakLive: the most clusters with a non-zero on-disk refcount seen after any
//   operation of the sequence so far (data, L2 tables, L1 tables, refcount
//   structures, snapshot table, header).
// - the factor 2 absorbs fragmentation: a run of n clusters allocated in one go
//   may go to the end of the file while shorter holes stay free (QEMU's
//   first-fit, and its free-cluster hint that skips past short holes).
// - opClustersMax: the most clusters one operation of the sequence may need at
//   once (its guest range, or a copy of the L1 table), for the same reason.
// - 8: header, the old and new L1 and refcount table and snapshot table being
//   swapped, the partial last cluster.
// - a refcount-table growth places the new refcount area at the start of the
//   next refblock's range (QEMU qcow2_refcount_area), skipping up to one
//   refblock's worth of clusters: refblockEntries = clusterSize * 8 / refcountBits.
import type { ModelState, Op } from '../../model/index.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check, CheckEnv } from './check.js';

export const spaceSlackClusters = 8;
export const spaceFragmentationFactor = 2;

interface SpaceMemory {
  peakLive: number;
  opClustersMax: number;
  reftableGrowths: number;
  reftableOffset: number | undefined;
}

function memory(env: CheckEnv): SpaceMemory {
  let m = env.scratch.get('space') as SpaceMemory | undefined;
  if (m === undefined) {
    m = { peakLive: 0, opClustersMax: 1, reftableGrowths: 0, reftableOffset: undefined };
    env.scratch.set('space', m);
  }
  return m;
}

/** Clusters an operation may need in one contiguous allocation. */
export function opClusters(op: Op, state: ModelState, l1Size: number): number {
  const cs = 2 ** state.options.clusterBits;
  const l1Clusters = Math.ceil((l1Size * 8) / cs) + 1;
  switch (op.kind) {
    case 'write':
    case 'writeZeroes':
    case 'discard':
      return Math.ceil(op.length / cs) + 1;
    default:
      return l1Clusters;
  }
}

export const spaceCheck: Check = {
  name: 'space',
  async afterOp(env, op) {
    const m = memory(env);
    const decoded = (await env.image()).decoded();
    const { header, fileSize, refcounts } = decoded;
    const cs = header.clusterSize;
    const fileClusters = Math.ceil(fileSize / cs);
    let live = 0;
    for (let c = 0; c < fileClusters; c++) if (refcounts.refcount(c) !== 0n) live++;
    m.peakLive = Math.max(m.peakLive, live);
    m.opClustersMax = Math.max(m.opClustersMax, opClusters(op, env.state, header.l1Size));
    if (m.reftableOffset !== undefined && m.reftableOffset !== header.refcountTableOffset) m.reftableGrowths++;
    m.reftableOffset = header.refcountTableOffset;
    const refblockEntries = (cs * 8) / 2 ** header.refcountOrder;
    const bound =
      spaceFragmentationFactor * m.peakLive + m.opClustersMax + spaceSlackClusters + m.reftableGrowths * (refblockEntries + 1);
    if (fileClusters > bound) {
      throw new PropertyViolation(
        'space',
        `after ${formatStep(op)}: the file has ${fileClusters} clusters (${fileSize} bytes) but at most ${bound} are explained ` +
          `(${live} live now, peak ${m.peakLive}, largest op ${m.opClustersMax} clusters, ${m.reftableGrowths} refcount-table growths)`,
      );
    }
  },
};
