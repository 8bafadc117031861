// Host writes of guest data: contiguous runs gathered into one pwrite each, the
// metadata overlap check every data write passes first, and the steps every
// guest write inside one L2 table shares (allocate, write the data, link).
import type { ImageState } from './state.js';
import type { L2Entry, L2Table } from './format/l2-entry.js';
import type { Extent } from './refcount.js';
import type { SubclusterBitmap } from './format/l2-entry-extended.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { markDirtyBit } from './flush.js';
import { allocUninitialized } from './io/block-file.js';

export interface Run {
  host: number;
  length: number;
  parts: Uint8Array[];
}

/**
 * Append a host write, merging it into the previous one when contiguous. A piece
 * that directly follows the previous one in the same buffer (whole clusters of
 * one guest write) widens that view instead, so the run needs no copy.
 */
export function pushRun(runs: Run[], host: number, bytes: Uint8Array): void {
  const last = runs[runs.length - 1];
  if (last && last.host + last.length === host) {
    const prev = last.parts[last.parts.length - 1];
    if (prev && prev.buffer === bytes.buffer && prev.byteOffset + prev.length === bytes.byteOffset) {
      last.parts[last.parts.length - 1] = new Uint8Array(prev.buffer, prev.byteOffset, prev.length + bytes.length);
    } else {
      last.parts.push(bytes);
    }
    last.length += bytes.length;
  } else {
    runs.push({ host, length: bytes.length, parts: [bytes] });
  }
}

export function runBytes(run: Run): Uint8Array {
  if (run.parts.length === 1 && run.parts[0]) return run.parts[0];
  const out = allocUninitialized(run.length);
  let at = 0;
  for (const part of run.parts) {
    out.set(part, at);
    at += part.length;
  }
  assert(at === run.length, 'a run is exactly its parts');
  return out;
}

/**
 * QEMU's metadata overlap check (the "constant" template plus refcount blocks):
 * guest data never goes over the header, the active L1, the refcount table or
 * blocks, or the snapshot table. Only a damaged image gets here: refuse the write.
 * Errors: Qcow2Error 'corrupt' naming the region.
 */
export function checkOverlap(s: ImageState, host: number, length: number): void {
  const cs = s.g.clusterSize;
  const overlaps = (start: number, bytes: number) => bytes > 0 && host < start + bytes && host + length > start;
  const region = overlaps(0, cs) ? 'header'
    : overlaps(s.map.l1Offset, s.map.l1.size * 8) ? 'active L1 table'
    : overlaps(s.header.snapshotsOffset, s.snapshotTableBytes) ? 'snapshot table'
    : s.refcounts.overlapsMetadata(host, length) ? 'refcount structures'
    : undefined;
  if (region !== undefined) throw new Qcow2Error('corrupt', `refusing a data write of ${length} bytes at ${host}: it overlaps the ${region}`);
}

/** What a guest write does to one guest cluster of one L2 table. */
export interface ClusterWritePlan {
  guestCluster: number;
  old: L2Entry;
  /** Host cluster the data goes to (-1 until allocated). */
  host: number;
  /** The data goes to a newly allocated cluster. */
  fresh: boolean;
  /** The entry (or its bitmap) changes. */
  link: boolean;
}

/** The guest clusters [first, last] of a write of `length` bytes at `offset` inside one L2 table, and that table made private. */
export async function writeSpan(s: ImageState, offset: number, length: number): Promise<{ first: number; last: number; table: L2Table }> {
  assert(length > 0, 'a write of at least one byte');
  const first = Math.floor(offset / s.g.clusterSize);
  const last = Math.floor((offset + length - 1) / s.g.clusterSize);
  const l1Index = s.map.l1Index(first);
  assert(s.map.l1Index(last) === l1Index, 'write span stays inside one L2 table');
  return { first, last, table: await s.map.privatize(l1Index) };
}

/**
 * The steps of a guest write inside one L2 table, after planning (QEMU
 * qcow2_alloc_host_offset, then the data, then qcow2_alloc_cluster_link_l2):
 * the fresh plans get the lowest free clusters, in ascending runs (holes fill
 * before the file grows; QEMU needs one contiguous run instead); `addRuns`
 * gathers the host writes, each written once after the overlap check, and on
 * failure the new clusters are given back; then every plan that links gets
 * a normal COPIED entry (with `bitmapOf(plan)` on an extended-L2 image) and
 * data that moved drops its reference to the old cluster.
 */
export async function writePlanned<P extends ClusterWritePlan>(
  s: ImageState,
  plans: readonly P[],
  addRuns: (runs: Run[]) => Promise<void>,
  bitmapOf: (plan: P) => SubclusterBitmap | undefined,
): Promise<void> {
  const cs = s.g.clusterSize;
  const fresh = plans.filter((p) => p.fresh);
  let allocated: readonly Extent[] = [];
  try {
    if (fresh.length > 0) allocated = await s.refcounts.allocateClusters(fresh.length);
    let next = 0;
    for (const [at, count] of allocated) {
      for (let j = 0; j < count; j++) {
        const p = fresh[next++];
        assert(p !== undefined, 'no more clusters allocated than asked for');
        p.host = at + j * cs;
      }
    }
    assert(next === fresh.length, 'every fresh plan has a host cluster');
    const runs: Run[] = [];
    await addRuns(runs);
    for (const run of runs) {
      checkOverlap(s, run.host, run.length);
      await s.file.pwrite(run.host, runBytes(run));
    }
  } catch (error) {
    for (const [at, count] of allocated) await s.refcounts.release(at, count);
    throw error;
  }
  if (!plans.some((p) => p.link)) return;
  await markDirtyBit(s);
  for (const p of plans) {
    if (!p.link) continue;
    await s.map.setEntry(p.guestCluster, { kind: 'normal', offset: p.host, copied: true }, bitmapOf(p));
    // Data that moved to a new cluster drops its reference to the old one.
    if (p.fresh) await s.map.release(p.old);
  }
}
