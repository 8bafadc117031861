// Refcounts past the end of the file. qemu-img check judges clusters up to the
// end of the file only (qcow2_check_refcounts: nb_clusters from the file
// length), so a count a crash left for a cluster the file never reached is no
// leak yet; it becomes one when the file grows over it, as the allocator
// skips a cluster whose count is not zero (alloc_clusters_noref).
import type { DecodedImage } from '../decode/image.js';

/**
 * Clusters at or past the end of the file (the first whole cluster after its
 * last byte) that a refcount block gives a non-zero count: the leaks a check
 * will find once the file covers them. Reads only refcount blocks whose range
 * reaches past the end (a block itself past the end reads as zeros, as
 * QEMU's block layer reads it). Units: clusters.
 */
export function countedPastEnd(decoded: DecodedImage): number {
  const h = decoded.header;
  const blockEntries = (h.clusterSize * 8) / 2 ** h.refcountOrder;
  const fileClusters = Math.ceil(decoded.fileSize / h.clusterSize);
  let counted = 0;
  decoded.refcounts.reftable.forEach((entry, i) => {
    const first = i * blockEntries;
    if (entry === 0n || first + blockEntries <= fileClusters) return;
    for (let c = Math.max(first, fileClusters); c < first + blockEntries; c++) {
      if (decoded.refcounts.refcount(c) !== 0n) counted++;
    }
  });
  return counted;
}
