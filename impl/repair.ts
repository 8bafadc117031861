// Rebuild refcounts of a dirty image (lazy refcounts after a crash) from the
// references, as QEMU's automatic "check -r all" at read-write open does (digest §5.2).
import type { ImageState } from './state.js';
import { Qcow2Error } from './errors.js';
import { L1Table, decodeL1 } from './format/l1-table.js';
import { l1SizeBytesMax, snapshotL1Fields, validateTable } from './limits.js';
import { syncCopied, walk } from './snapshot.js';
import { flushMetadata } from './flush.js';
import { assert } from './assert.js';

/** `check -r leaks` lowers counts above the references; `check -r all` also raises those below and fixes COPIED flags. */
export type RepairMode = 'leaks' | 'all';

/** One refcount the repair changed: what the file said, what the references need. */
export interface RefcountFix {
  readonly cluster: number;
  readonly refcount: number;
  readonly reference: number;
}

/**
 * The repaired refcounts, split as qemu-img check -r reports them
 * (qcow2_check_refcounts with BDRV_FIX_LEAKS / BDRV_FIX_ERRORS): a leak is a
 * count above the references, a corruption one below.
 */
export interface RepairResult {
  readonly leaks: readonly RefcountFix[];
  readonly corruptions: readonly RefcountFix[];
  /** COPIED flags set right (check_oflag_copied): QEMU counts each as a corruption fixed. */
  readonly copiedFixed: number;
}

/**
 * Rebuild the refcounts from the references. Mode 'all' (the default, and what
 * a read-write open of a dirty image runs) sets every count to its references
 * and the COPIED flags to match; mode 'leaks' only lowers counts above their
 * references (QEMU's `-r leaks` never raises a count), and sets the COPIED
 * flags only when no count is below its references. Errors: 'corrupt' when
 * a count does not fit the refcount width or a counted cluster has no block.
 */
export async function repairRefcounts(s: ImageState, mode: RepairMode = 'all'): Promise<RepairResult> {
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
  // Every cluster of the file (QEMU judges no count past its end) and every referenced one.
  let clusters = Math.ceil(fileLength / cs);
  for (const c of counts.keys()) clusters = Math.max(clusters, c + 1);
  const leaks: RefcountFix[] = [];
  const corruptions: RefcountFix[] = [];
  const want = new Map<number, number>();
  for (let c = 0; c < clusters; c++) {
    const refcount = await s.refcounts.logical(c);
    const reference = counts.get(c) ?? 0;
    if (refcount > reference) leaks.push({ cluster: c, refcount, reference });
    if (refcount < reference) corruptions.push({ cluster: c, refcount, reference });
    const target = mode === 'all' ? reference : Math.min(refcount, reference);
    if (target !== 0) want.set(c, target);
  }
  assert(leaks.every((f) => f.reference < f.refcount), 'a leak is a count above its references');
  await s.refcounts.rewriteAll(want);
  // QEMU's -r leaks sets the COPIED flags too when no count is left below its references (check_oflag_copied).
  const copiedFixed = mode === 'all' || corruptions.length === 0 ? await syncCopied(s) : 0;
  await flushMetadata(s);
  return { leaks, corruptions: mode === 'all' ? corruptions : [], copiedFixed };
}
