// Rebuild refcounts of a dirty image (lazy refcounts after a crash) from the
// references, as QEMU's automatic "check -r all" at read-write open does (digest §5.2).
import type { ImageState } from './state.js';
import { Qcow2Error } from './errors.js';
import { L1Table, decodeL1 } from './format/l1-table.js';
import { l1SizeBytesMax, snapshotL1Fields, validateTable } from './limits.js';
import { syncCopied, walk } from './snapshot.js';
import { flushMetadata } from './flush.js';

export async function repairRefcounts(s: ImageState): Promise<void> {
  const cs = s.g.clusterSize;
  const counts = new Map<number, number>();
  const addRange = (offset: number, bytes: number) => {
    for (let c = Math.floor(offset / cs); c <= Math.floor((offset + bytes - 1) / cs); c++) counts.set(c, (counts.get(c) ?? 0) + 1);
  };
  const addWalk = (walked: Map<number, number>) => {
    for (const [c, k] of walked) counts.set(c, (counts.get(c) ?? 0) + k);
  };
  const fileLength = await s.file.length();
  addRange(0, cs);
  if (s.map.l1.size > 0) addRange(s.map.l1Offset, s.map.l1.size * 8);
  addWalk(await walk(s, s.map.l1));
  for (const e of s.snapshots) {
    validateTable(e.l1TableOffset, e.l1Size, 8, l1SizeBytesMax, snapshotL1Fields(e.id), cs, fileLength);
    const l1: L1Table = decodeL1(await s.file.pread(e.l1TableOffset, e.l1Size * 8), e.l1Size, cs, e.l1TableOffset);
    if (e.l1Size > 0) addRange(e.l1TableOffset, e.l1Size * 8);
    addWalk(await walk(s, l1));
  }
  if (s.snapshotTableBytes > 0) addRange(s.header.snapshotsOffset, s.snapshotTableBytes);
  addRange(s.refcounts.reftableOffset, s.refcounts.reftableClusters * cs);
  for (const offset of s.refcounts.reftable) if (offset !== 0) addRange(offset, cs);
  for (const [c, k] of counts) {
    if (k > s.g.refcountMax) throw new Qcow2Error('corrupt', `cannot repair refcounts: cluster ${c} has ${k} references (max ${s.g.refcountMax})`);
  }
  await s.refcounts.rewriteAll(counts);
  await syncCopied(s);
  await flushMetadata(s);
}
