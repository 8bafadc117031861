// Faults (docs/semantics.md, "Faults: crashes and I/O errors"): what a guest
// may read after a crash or a failed operation, and the state the model goes on
// from once the image has been judged.
//
// After a fault the image is one of many: any sector written since the last
// durable point may hold its old or its new bytes. The model does not pick one;
// it states the allowed set (the guest views of the candidate states, sector by
// sector) and adopts the image that was judged to lie in it.
import type { SubclusterBitmap } from './decode/extended-l2.js';
import type { DecodedImage, DecodedL1, DecodedL2Entry } from './decode/image.js';
import type { ImageOptions } from './ops.js';
import { read } from './read.js';
import type { BackingLayer, DataCluster, L1Table, L2Entry, L2Table, ModelState, Snapshot } from './state.js';
import { subclustersPerCluster, type SubclusterState, type Subclusters } from './subclusters.js';

/** The unit a crash never splits (a disk sector): a sector lands whole or not at all. */
export const faultSectorBytes = 512;

/**
 * Whether a guest view after a fault is allowed. `candidates` are the model
 * states after the last durable operation and after each operation since,
 * oldest first (at least one). `disk` is the whole guest view the image reads
 * now (its length is the virtual size it reports). Allowed: the size is one
 * candidate's, and every 512-byte sector equals that sector in some candidate
 * (a candidate smaller than the disk reads zeros past its end).
 * @returns undefined when allowed, else which sector (guest byte offset) or size is not.
 */
export function disallowedAfterFault(candidates: readonly ModelState[], disk: Uint8Array): string | undefined {
  if (candidates.length === 0) throw new RangeError('disallowedAfterFault needs at least one candidate state');
  const sizes = candidates.map((s) => s.options.virtualSize);
  if (!sizes.includes(disk.length)) return `virtual size ${disk.length} is none of the sizes since the last flush (${[...new Set(sizes)].join(', ')})`;
  // Cluster by cluster, each candidate's view read only when the ones before it differ (most clusters match the first one tried).
  const clusterSize = 2 ** (candidates[0]?.options.clusterBits ?? 9);
  let preferred = candidates.length - 1;
  for (let start = 0; start < disk.length; start += clusterSize) {
    const end = Math.min(disk.length, start + clusterSize);
    const found = disk.subarray(start, end);
    const views: (Uint8Array | undefined)[] = [];
    const view = (i: number): Uint8Array => {
      let v = views[i];
      if (v === undefined) {
        const s = candidates[i] as ModelState;
        v = new Uint8Array(end - start);
        const readable = Math.min(end, s.options.virtualSize) - start;
        if (readable > 0) v.set(read(s, start, readable));
        views[i] = v;
      }
      return v;
    };
    if (sameBytes(view(preferred), found)) continue;
    const whole = candidates.findIndex((_, i) => sameBytes(view(i), found));
    if (whole >= 0) {
      preferred = whole;
      continue;
    }
    for (let at = 0; at < found.length; at += faultSectorBytes) {
      const sectorEnd = Math.min(found.length, at + faultSectorBytes);
      const sector = found.subarray(at, sectorEnd);
      if (!candidates.some((_, i) => sameBytes(view(i).subarray(at, sectorEnd), sector))) {
        return `guest sector at 0x${(start + at).toString(16)} reads bytes that no state since the last flush holds there`;
      }
    }
  }
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The model state of a decoded image that was judged allowed: guest clusters,
 * subclusters (extended L2 entries), snapshots and the sharing of L2 tables,
 * data clusters and compressed streams between views (one identity per host
 * offset). `options` gives what the header does not change; the virtual size
 * is the header's. `compressed` holds the guest bytes of each compressed
 * stream by its host byte offset (the model has no decompressor: the caller
 * inflates them). `backing` is the layer the image reads through to: a fault
 * on the top image never writes its backing files, so the state before the
 * fault gives it (undefined: none). Throws RangeError for a compressed stream
 * it lacks.
 */
export function stateFromImage(decoded: DecodedImage, options: ImageOptions, compressed: ReadonlyMap<number, Uint8Array>, backing?: BackingLayer): ModelState {
  const clusterSize = decoded.header.clusterSize;
  let nextId = 1;
  const tables = new Map<number, L2Table>();
  const clusters = new Map<number, DataCluster>();
  const streams = new Map<number, DataCluster>();
  const cluster = (host: number): DataCluster => {
    let c = clusters.get(host);
    if (c === undefined) {
      c = { id: nextId++, bytes: decoded.reader.read(host, clusterSize) };
      clusters.set(host, c);
    }
    return c;
  };
  const stream = (host: number): DataCluster => {
    let c = streams.get(host);
    if (c === undefined) {
      const bytes = compressed.get(host);
      if (bytes === undefined) throw new RangeError(`no guest bytes given for the compressed stream at host byte ${host}`);
      c = { id: nextId++, bytes };
      streams.set(host, c);
    }
    return c;
  };
  const entry = (e: DecodedL2Entry): L2Entry | undefined => {
    switch (e.kind) {
      case 'unallocated': {
        // an extended entry without a host cluster may still read zeros in some subclusters
        const subclusters = e.subclusters === undefined ? undefined : subclustersOf(e.subclusters);
        return subclusters?.includes('zero') === true ? { kind: 'zero-plain', subclusters } : undefined;
      }
      case 'zero-plain':
        return { kind: 'zero-plain' };
      case 'zero-alloc':
        return { kind: 'zero-alloc', data: cluster(e.host ?? 0) };
      case 'normal':
        return e.subclusters === undefined
          ? { kind: 'normal', data: cluster(e.host ?? 0) }
          : { kind: 'normal', data: cluster(e.host ?? 0), subclusters: subclustersOf(e.subclusters) };
      case 'compressed':
        return { kind: 'compressed', data: stream(e.host ?? 0) };
      default: {
        const never: never = e.kind;
        throw new Error(`unknown entry kind ${String(never)}`);
      }
    }
  };
  const table = (host: number): L2Table => {
    const known = tables.get(host);
    if (known !== undefined) return known;
    const entries = new Map<number, L2Entry>();
    for (const [index, e] of (decoded.l2Tables.get(host) ?? []).entries()) {
      const made = entry(e);
      if (made !== undefined) entries.set(index, made);
    }
    const made = { id: nextId++, entries };
    tables.set(host, made);
    return made;
  };
  const l1 = (d: DecodedL1): L1Table => d.l2Offsets.map((offset) => (offset === 0 ? undefined : table(offset)));
  const snapshots: Snapshot[] = decoded.snapshots.map((s) => ({
    id: s.id,
    name: s.name,
    diskSize: s.diskSize === undefined ? decoded.header.size : Number(s.diskSize),
    l1: l1(s.l1),
  }));
  const active = l1(decoded.active);
  return { options: { ...options, virtualSize: decoded.header.size }, ...(backing === undefined ? {} : { backing }), active, snapshots, nextId };
}

/** The subcluster states of an extended entry's bitmap halves (decodeImage refuses a bit set in both). */
function subclustersOf(bitmap: SubclusterBitmap): Subclusters {
  const states: SubclusterState[] = [];
  for (let i = 0; i < subclustersPerCluster; i++) {
    const bit = 2 ** i;
    states.push(Math.floor(bitmap.alloc / bit) % 2 === 1 ? 'allocated' : Math.floor(bitmap.zero / bit) % 2 === 1 ? 'zero' : 'unallocated');
  }
  return states;
}
