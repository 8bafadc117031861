// One per-cluster rule over a range of guest clusters (the loop QEMU's
// zero_in_l2_slice and discard_in_l2_slice share), for standard and extended
// L2 entries alike: each L2 table is privatized once, and an entry that no
// longer points at its old host cluster drops the reference.
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { emptyBitmap, type SubclusterBitmap } from './format/l2-entry-extended.js';
import { assert } from './assert.js';

/** A rule's new entry, with its subcluster bitmap on an extended-L2 image. */
export interface RuledEntry {
  readonly entry: L2Entry;
  readonly bitmap?: SubclusterBitmap;
}

/**
 * What a rule makes of an entry and its bitmap (emptyBitmap for a standard or
 * compressed entry); undefined leaves it unchanged.
 */
export type ClusterRule = (old: L2Entry, bitmap: SubclusterBitmap) => RuledEntry | undefined;

/** Apply `rule` to guest clusters [first, end). */
export async function eachCluster(s: ImageState, first: number, end: number, rule: ClusterRule): Promise<void> {
  assert(Number.isInteger(first) && first <= end, 'a range of guest clusters');
  const n = s.g.l2EntriesCount;
  let c = first;
  while (c < end) {
    const stop = Math.min(end, (Math.floor(c / n) + 1) * n);
    const table = await s.map.privatize(s.map.l1Index(c));
    for (; c < stop; c++) {
      const old = table.get(c % n);
      const next = rule(old, s.g.extendedL2 && old.kind !== 'compressed' ? table.bitmap(c % n) : emptyBitmap);
      if (next === undefined) continue;
      assert((next.bitmap !== undefined) === s.g.extendedL2, 'a bitmap exactly on extended-L2 images');
      await s.map.setEntry(c, next.entry, next.bitmap);
      if (!keepsCluster(old, next.entry)) await s.map.release(old);
    }
  }
}

/** Whether `next` still points at the host cluster `old` holds (a zeroized allocated cluster). */
function keepsCluster(old: L2Entry, next: L2Entry): boolean {
  const holds = (e: L2Entry) => e.kind === 'normal' || e.kind === 'zero-alloc';
  return holds(old) && holds(next) && next.offset === old.offset;
}
