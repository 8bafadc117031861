// Guest writes to an image with extended L2 entries, per subcluster as QEMU 7.2
// does it (qcow2-cluster.c: handle_copied / handle_alloc, calculate_l2_meta,
// qcow2_alloc_cluster_link_l2). Each touched cluster gets a copy-on-write range
// [cowFrom, cowTo) around the written bytes; only that range is written to the
// host cluster, and only its subclusters are marked allocated (and not zero).
import type { ImageState } from './state.js';
import type { ClusterKind, L2Entry, L2Table } from './format/l2-entry.js';
import { AssertionError, assert, assertNever } from './assert.js';
import { readCompressedCluster } from './compressed.js';
import { pushRun, writePlanned, writeSpan, type ClusterWritePlan, type Run } from './host-write.js';
import { ctz32, emptyBitmap, markAllocated, subclusterKind, type SubclusterBitmap, type SubclusterKind } from './format/l2-entry-extended.js';

interface SubclusterPlan extends ClusterWritePlan {
  bitmap: SubclusterBitmap;
  /** Written bytes [from, to) and copy-on-write range [cowFrom, cowTo), offsets inside the cluster. */
  from: number;
  to: number;
  cowFrom: number;
  cowTo: number;
}

/**
 * The guest view of whole guest cluster `guestCluster` behind an extended
 * entry: allocated subclusters from the host cluster, zero ones zeros, and
 * unallocated ones the backing chain (zeros without one or past its end).
 */
async function extendedClusterView(s: ImageState, entry: L2Entry, bitmap: SubclusterBitmap, guestCluster: number): Promise<Uint8Array> {
  const cs = s.g.clusterSize;
  if (entry.kind === 'compressed') return readCompressedCluster(s.file, entry.descriptor, s.g, s.header.compressionType);
  const out = entry.kind === 'normal' && bitmap.alloc !== 0 ? await s.file.pread(entry.offset, cs) : new Uint8Array(cs);
  assert(out.length === cs, 'a whole cluster is read');
  for (let at = 0; at < cs; ) {
    const run = subclusterRun(s, entry.kind, bitmap, at, cs - at);
    if (run.kind === 'unallocated' && s.backing !== undefined) out.set(await s.backing.read(guestCluster * cs + at, run.length), at);
    else if (run.kind !== 'data') out.fill(0, at, at + run.length);
    at += run.length;
  }
  return out;
}

/**
 * The bytes from `inCluster` (at most `n`) whose subclusters are all of one
 * kind (qcow2_get_subcluster_type) in a cluster whose entry is of kind `kind`
 * (normal or unallocated: a compressed one has no subclusters).
 */
export function subclusterRun(s: ImageState, kind: ClusterKind, bitmap: SubclusterBitmap, inCluster: number, n: number): { kind: Exclude<SubclusterKind, 'compressed'>; length: number } {
  const sc = s.g.subclusterSize;
  assert(n > 0 && inCluster + n <= s.g.clusterSize, 'the bytes lie inside one cluster');
  assert(kind === 'normal' || kind === 'unallocated', 'runs of subclusters in a normal or unallocated cluster');
  const first = Math.floor(inCluster / sc);
  const runKind = subclusterKind(kind, bitmap, first);
  assert(runKind !== 'compressed' && (runKind !== 'data' || kind === 'normal'), 'data subclusters only in a host cluster');
  let end = (first + 1) * sc;
  while (end < inCluster + n && subclusterKind(kind, bitmap, end / sc) === runKind) end += sc;
  const length = Math.min(n, end - inCluster);
  assert(length > 0, 'a run holds at least one byte');
  return { kind: runKind, length };
}

/**
 * calculate_l2_meta for one cluster: the range QEMU copies and writes. `inPlace`
 * is a COPIED normal cluster (keep_old_clusters); otherwise a new cluster is
 * allocated and the range reaches the old cluster's outermost allocated
 * subclusters (a compressed one is copied whole).
 */
function cowRange(s: ImageState, old: L2Entry, bitmap: SubclusterBitmap, from: number, to: number, inPlace: boolean): { cowFrom: number; cowTo: number } {
  const sc = s.g.subclusterSize;
  const cs = s.g.clusterSize;
  const firstSc = Math.floor(from / sc);
  const lastSc = Math.floor((to - 1) / sc);
  const roundDown = firstSc * sc;
  const roundUp = (lastSc + 1) * sc;
  if (inPlace) {
    return {
      cowFrom: subclusterKind(old.kind, bitmap, firstSc) === 'data' ? from : roundDown,
      cowTo: subclusterKind(old.kind, bitmap, lastSc) === 'data' ? to : roundUp,
    };
  }
  switch (old.kind) {
    case 'compressed':
      return { cowFrom: 0, cowTo: cs };
    case 'normal':
      // Leading and trailing unallocated and zero subclusters are skipped.
      return { cowFrom: Math.min(firstSc, ctz32(bitmap.alloc)) * sc, cowTo: cs - Math.min(31 - lastSc, Math.clz32(bitmap.alloc)) * sc };
    case 'unallocated':
      return { cowFrom: roundDown, cowTo: roundUp };
    case 'zero-plain':
    case 'zero-alloc':
      throw new AssertionError('extended entries have no zero flag');
    default:
      return assertNever(old, 'L2 entry');
  }
}

/** Whether every subcluster of [from, to) is allocated in this COPIED cluster (QEMU skips the metadata update then). */
function allData(s: ImageState, old: L2Entry, bitmap: SubclusterBitmap, from: number, to: number): boolean {
  const sc = s.g.subclusterSize;
  for (let i = Math.floor(from / sc); i <= Math.floor((to - 1) / sc); i++) if (subclusterKind(old.kind, bitmap, i) !== 'data') return false;
  return true;
}

function planCluster(s: ImageState, table: L2Table, guestCluster: number, offset: number, end: number): SubclusterPlan {
  const cs = s.g.clusterSize;
  const index = guestCluster % s.g.l2EntriesCount;
  const old = table.get(index);
  const bitmap = old.kind === 'compressed' ? emptyBitmap : table.bitmap(index);
  const clusterStart = guestCluster * cs;
  const from = Math.max(offset, clusterStart) - clusterStart;
  const to = Math.min(end, clusterStart + cs) - clusterStart;
  const inPlace = old.kind === 'normal' && old.copied;
  const { cowFrom, cowTo } = cowRange(s, old, bitmap, from, to, inPlace);
  assert(cowFrom <= from && to <= cowTo && cowTo <= cs, 'the copy-on-write range holds the written bytes');
  const link = !inPlace || !allData(s, old, bitmap, from, to);
  return { guestCluster, old, bitmap, from, to, cowFrom, cowTo, host: inPlace ? old.offset : -1, fresh: !inPlace, link };
}

/** A write that stays inside one L2 table of an extended-L2 image. */
export async function writeInTableExtended(s: ImageState, offset: number, data: Uint8Array): Promise<void> {
  const cs = s.g.clusterSize;
  const { first, last, table } = await writeSpan(s, offset, data.length);
  const plans: SubclusterPlan[] = [];
  for (let c = first; c <= last; c++) plans.push(planCluster(s, table, c, offset, offset + data.length));
  const addRuns = async (runs: Run[]) => {
    for (const p of plans) {
      const piece = data.subarray(p.guestCluster * cs + p.from - offset, p.guestCluster * cs + p.to - offset);
      if (p.cowFrom === p.from && p.cowTo === p.to) {
        pushRun(runs, p.host + p.from, piece);
        continue;
      }
      const whole = await extendedClusterView(s, p.old, p.bitmap, p.guestCluster);
      whole.set(piece, p.from);
      pushRun(runs, p.host + p.cowFrom, whole.subarray(p.cowFrom, p.cowTo));
    }
  };
  const sc = s.g.subclusterSize;
  await writePlanned(s, plans, addRuns, (p) => markAllocated(p.bitmap, Math.floor(p.cowFrom / sc), Math.ceil(p.cowTo / sc)));
}
