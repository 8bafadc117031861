// equivalent: the model state and a decoded image are the same up to a
// consistent renaming of host offsets (a bijection model identity ↔ host
// offset, separately for L2 tables, data clusters and compressed streams).
// Streams are paired by their byte offset; the host clusters they touch are
// the image's packing, so their expected refcounts are summed from the image's
// own stream ranges: each stream counts once per walk in every cluster it touches.
import type { AbstractImage, AbstractView } from './abstract.js';
import type { DecodedL2Entry } from './decode/image.js';
import { expectedRefcounts } from './refcounts.js';
import { geometry, type L1Table, type L2Entry, type ModelState } from './state.js';
import { bitmapOf, uniformSubclusters } from './subclusters.js';

export interface Difference {
  readonly view: string;
  readonly guestCluster?: number;
  readonly expected: string;
  readonly found: string;
}
export type Equivalence = { readonly ok: true } | { readonly ok: false; readonly message: string; readonly difference: Difference };

class Mismatch extends Error {
  constructor(readonly difference: Difference) {
    super(`${difference.view}${difference.guestCluster === undefined ? '' : ` guest cluster ${difference.guestCluster}`}: expected ${difference.expected}, found ${difference.found}`);
  }
}

/** Data clusters by host offset; compressed streams by byte offset, with the byte length of each stream's range. */
interface DataRenamings {
  readonly clusters: Renaming;
  readonly streams: Renaming;
  readonly streamLengths: Map<number, number>;
}

/** A bijection between model ids and host offsets, built as the views are walked. */
class Renaming {
  private readonly toHost = new Map<number, number>();
  private readonly toModel = new Map<number, number>();
  constructor(private readonly what: string) {}
  pair(id: number, host: number, where: Omit<Difference, 'expected' | 'found'>): boolean {
    const knownHost = this.toHost.get(id);
    const knownId = this.toModel.get(host);
    if (knownHost === undefined && knownId === undefined) {
      this.toHost.set(id, host);
      this.toModel.set(host, id);
      return true;
    }
    if (knownHost === host && knownId === id) return false;
    const expected = knownHost === undefined ? `a ${this.what} not used elsewhere` : `the ${this.what} at host offset ${knownHost}`;
    throw new Mismatch({ ...where, expected, found: `${this.what} at host offset ${host}${knownId === undefined ? '' : ' (shared with another model identity)'}` });
  }
  entries(): IterableIterator<[number, number]> {
    return this.toHost.entries();
  }
}

export function equivalent(state: ModelState, image: AbstractImage): Equivalence {
  try {
    compare(state, image);
    return { ok: true };
  } catch (error) {
    if (error instanceof Mismatch) return { ok: false, message: error.message, difference: error.difference };
    throw error;
  }
}

function same(view: string, what: string, expected: unknown, found: unknown): void {
  if (expected !== found) throw new Mismatch({ view, expected: `${what} ${String(expected)}`, found: `${what} ${String(found)}` });
}

function compare(state: ModelState, image: AbstractImage): void {
  const o = state.options;
  for (const [what, expected, found] of [
    ['version', o.version, image.version],
    ['cluster bits', o.clusterBits, image.clusterBits],
    ['refcount bits', o.refcountBits, image.refcountBits],
    ['lazy refcounts', o.lazyRefcounts, image.lazyRefcounts],
    ['extended L2', o.extendedL2 === true, image.extendedL2],
    ['compression type', o.compressionType ?? 'zlib', image.compressionType],
    ['virtual size', o.virtualSize, image.virtualSize],
    ['corrupt bit', false, image.corrupt],
    ['snapshot count', state.snapshots.length, image.snapshots.length],
  ] as const) same('image', what, expected, found);
  const tables = new Renaming('L2 table');
  const data: DataRenamings = { clusters: new Renaming('data cluster'), streams: new Renaming('compressed stream'), streamLengths: new Map() };
  compareView(state, image, state.active, image.active, tables, data);
  state.snapshots.forEach((s, i) => {
    const found = image.snapshots[i]!;
    same(s.name, 'snapshot id', s.id, found.id);
    same(s.name, 'snapshot name', s.name, found.label);
    same(s.name, 'snapshot disk size', s.diskSize, found.diskSize);
    compareView(state, image, s.l1, found, tables, data);
  });
  compareRefcounts(state, image, tables, data);
}

function compareView(state: ModelState, image: AbstractImage, l1: L1Table, view: AbstractView, tables: Renaming, data: DataRenamings): void {
  const g = geometry(state.options);
  const length = Math.max(l1.length, view.l1.l2Offsets.length);
  for (let l1Index = 0; l1Index < length; l1Index++) {
    const table = l1[l1Index];
    const host = view.l1.l2Offsets[l1Index] ?? 0;
    const where = { view: view.label, guestCluster: l1Index * g.l2EntriesCount };
    if (table === undefined || host === 0) {
      if (table !== undefined || host !== 0) {
        throw new Mismatch({ ...where, expected: table ? 'an L2 table' : 'L1 entry 0', found: host ? `L2 table at ${host}` : 'L1 entry 0' });
      }
      continue;
    }
    if (!tables.pair(table.id, host, where)) continue; // this pair was compared already
    const entries = image.l2Tables.get(host)!;
    for (let l2Index = 0; l2Index < g.l2EntriesCount; l2Index++) {
      compareEntry(table.entries.get(l2Index), entries[l2Index]!, image, data, { view: view.label, guestCluster: l1Index * g.l2EntriesCount + l2Index });
    }
  }
}

function compareEntry(model: L2Entry | undefined, found: DecodedL2Entry, image: AbstractImage, data: DataRenamings, where: { view: string; guestCluster: number }): void {
  const kind = model?.kind ?? 'unallocated';
  // with subclusters, zero-plain is an entry at offset 0 (unallocated) with zero bits
  const foundKind = found.kind === 'unallocated' && (found.subclusters?.zero ?? 0) !== 0 ? 'zero-plain' : found.kind;
  if (kind !== foundKind) throw new Mismatch({ ...where, expected: kind, found: foundKind });
  if (image.extendedL2 && kind !== 'compressed') compareBitmap(model, found, where);
  if (model === undefined || model.kind === 'zero-plain') return;
  if (model.kind === 'compressed') {
    data.streams.pair(model.data.id, found.host!, where);
    data.streamLengths.set(found.host!, found.length!);
    return; // its bytes are judged through reads: the model does not decompress
  }
  // a pair seen before (a cluster shared between views) had its bytes compared then
  const first = data.clusters.pair(model.data.id, found.host!, where);
  if (!first || model.kind !== 'normal') return;
  const bytes = image.dataBytes.get(found.host!)!;
  const at = firstByteDifference(model.data.bytes, bytes, allocatedRanges(model, image.clusterBits));
  if (at >= 0) {
    throw new Mismatch({ ...where, expected: `byte ${at} of the cluster = 0x${model.data.bytes[at]!.toString(16)}`, found: `0x${bytes[at]!.toString(16)} (host ${found.host! + at})` });
  }
}

/** The subcluster bitmap of an extended entry against the model's subclusters (none: all unallocated). */
function compareBitmap(model: L2Entry | undefined, found: DecodedL2Entry, where: { view: string; guestCluster: number }): void {
  const states = model === undefined || model.kind === 'compressed' || model.kind === 'zero-alloc' ? undefined : model.subclusters;
  const expected = bitmapOf(states ?? uniformSubclusters('unallocated'));
  const bitmap = found.subclusters ?? { alloc: 0, zero: 0 };
  if (expected.alloc !== bitmap.alloc || expected.zero !== bitmap.zero) {
    const show = (b: { alloc: number; zero: number }) => `allocation 0x${b.alloc.toString(16)} zero 0x${b.zero.toString(16)}`;
    throw new Mismatch({ ...where, expected: `subclusters ${show(expected)}`, found: show(bitmap) });
  }
}

/** Byte ranges of a normal cluster the guest reads from its host cluster: all of it, or its allocated subclusters. */
function allocatedRanges(model: Extract<L2Entry, { kind: 'normal' }>, clusterBits: number): [number, number][] {
  const clusterSize = 2 ** clusterBits;
  if (model.subclusters === undefined) return [[0, clusterSize]];
  const size = clusterSize / model.subclusters.length;
  return model.subclusters.flatMap((s, i): [number, number][] => (s === 'allocated' ? [[i * size, (i + 1) * size]] : []));
}

/** The first index in `ranges` where `expected` and `found` differ, or -1. A plain loop: this runs over every data byte after every op. */
function firstByteDifference(expected: Uint8Array, found: Uint8Array, ranges: readonly [number, number][]): number {
  for (const [start, end] of ranges) for (let i = start; i < end; i++) if (expected[i] !== found[i]) return i;
  return -1;
}

function compareRefcounts(state: ModelState, image: AbstractImage, tables: Renaming, data: DataRenamings): void {
  const expected = expectedRefcounts(state);
  const g = geometry(state.options);
  for (const [renaming, counts, what] of [
    [tables, expected.l2Tables, 'L2 table'],
    [data.clusters, expected.dataClusters, 'data cluster'],
  ] as const) {
    for (const [id, host] of renaming.entries()) {
      const found = image.refcount(host);
      const want = counts.get(id) ?? 0;
      if (found !== BigInt(want)) throw new Mismatch({ view: 'refcounts', expected: `${what} at host ${host} refcount ${want}`, found: `refcount ${found}` });
    }
  }
  compareStreamRefcounts(image, data, expected.dataClusters, g.clusterSize);
  for (const [l1Index, copied] of expected.activeL1Copied) {
    same('active', `COPIED of L1 entry ${l1Index}`, copied, image.active.l1.copied[l1Index]);
  }
  for (const [guestCluster, copied] of expected.activeL2Copied) {
    const host = image.active.l1.l2Offsets[Math.floor(guestCluster / g.l2EntriesCount)]!;
    const found = image.l2Tables.get(host)![guestCluster % g.l2EntriesCount]!.copied;
    if (found !== copied) throw new Mismatch({ view: 'active', guestCluster, expected: `COPIED ${copied}`, found: `COPIED ${found}` });
  }
}

/** Each host cluster touched by compressed streams holds one reference per stream per walk (update_refcount over the stream's bytes). */
function compareStreamRefcounts(image: AbstractImage, data: DataRenamings, counts: ReadonlyMap<number, number>, clusterSize: number): void {
  const perCluster = new Map<number, number>();
  for (const [id, host] of data.streams.entries()) {
    const length = data.streamLengths.get(host)!;
    const walks = counts.get(id) ?? 0;
    for (let c = Math.floor(host / clusterSize); c <= Math.floor((host + length - 1) / clusterSize); c++) perCluster.set(c, (perCluster.get(c) ?? 0) + walks);
  }
  for (const [cluster, want] of perCluster) {
    const found = image.refcount(cluster * clusterSize);
    if (found !== BigInt(want)) throw new Mismatch({ view: 'refcounts', expected: `host cluster ${cluster} of compressed streams refcount ${want}`, found: `refcount ${found}` });
  }
}
