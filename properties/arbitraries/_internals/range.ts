// A guest range is generated symbolically and resolved against the disk as it is
// when the command runs (the size changes with resize and revert). The anchors
// aim at the corners on purpose: the first cluster, the last cluster of the
// disk, the clusters on both sides of an L2 table boundary, the very end.
import fc from 'fast-check';

export type RangeAnchor = 'first' | 'random' | 'l2-boundary' | 'last' | 'end';
export type RangeIntra = 'aligned' | 'sector' | 'unaligned';
export type RangeLength = 'sub-cluster' | 'one-cluster' | 'multi-cluster' | 'bulk' | 'to-end' | 'past-end';

export interface RangeSpec {
  readonly anchor: RangeAnchor;
  readonly intra: RangeIntra;
  readonly length: RangeLength;
  /** Raw entropy, reduced modulo whatever the anchor, intra offset and length need. */
  readonly a: number;
  readonly b: number;
  readonly c: number;
}

export interface Geometry {
  readonly virtualSize: number;
  readonly clusterSize: number;
  readonly l2EntriesCount: number;
  /** Present on extended-L2 images only: sector offsets and short lengths then aim at subclusters. */
  readonly subclusterSize?: number;
}

/** Longest multi-cluster range, in clusters (bounds memory with 2 MiB clusters). */
export const multiClustersMax = 6;
/** A bulk range: 1024 … 5119 clusters, at most this many bytes (it fills small-cluster files fast). */
export const bulkBytesMax = 2 * 1024 * 1024;

function weighted<T>(pairs: ReadonlyArray<readonly [T, number]>): fc.Arbitrary<T> {
  return fc.oneof(...pairs.map(([value, weight]) => ({ arbitrary: fc.constant(value), weight })));
}

export function buildRangeSpec(pastEndWeight: number): fc.Arbitrary<RangeSpec> {
  return fc.record({
    anchor: weighted<RangeAnchor>([['first', 2], ['random', 5], ['l2-boundary', 2], ['last', 3], ['end', 1]]),
    intra: weighted<RangeIntra>([['aligned', 4], ['sector', 2], ['unaligned', 3]]),
    length: weighted<RangeLength>([
      ['sub-cluster', 4],
      ['one-cluster', 3],
      ['multi-cluster', 3],
      ['bulk', 2],
      ['to-end', 1],
      ...(pastEndWeight > 0 ? [['past-end', pastEndWeight] as const] : []),
    ]),
    a: fc.nat(),
    b: fc.nat(),
    c: fc.nat(),
  });
}

function anchorCluster(spec: RangeSpec, clustersCount: number, l2EntriesCount: number): number {
  switch (spec.anchor) {
    case 'first':
      return 0;
    case 'random':
      return spec.a % clustersCount;
    case 'l2-boundary': {
      // the last cluster of an L2 table, so that one more cluster crosses into the next
      const tables = Math.ceil(clustersCount / l2EntriesCount);
      const table = tables > 1 ? spec.a % (tables - 1) : 0;
      return Math.min(clustersCount - 1, (table + 1) * l2EntriesCount - 1 - (spec.a % 2));
    }
    case 'last':
    case 'end':
      return clustersCount - 1;
    default: {
      const never: never = spec.anchor;
      throw new Error(`unknown anchor ${String(never)}`);
    }
  }
}

/**
 * The concrete range for `spec` on a disk of this geometry. In range unless the
 * spec asks for 'past-end' (or the disk is empty).
 */
export function resolveRange(spec: RangeSpec, g: Geometry): { offset: number; length: number } {
  const size = g.virtualSize;
  if (size === 0) return { offset: 0, length: 1 + (spec.c % g.clusterSize) };
  const cs = g.clusterSize;
  const clustersCount = Math.ceil(size / cs);
  const base = anchorCluster(spec, clustersCount, g.l2EntriesCount) * cs;
  let intra: number;
  if (spec.anchor === 'end') intra = cs - 1 - (spec.b % Math.min(cs, 1024));
  else if (spec.intra === 'aligned') intra = 0;
  else if (spec.intra === 'sector') intra = g.subclusterSize === undefined ? 512 * (spec.b % (cs / 512)) : subclusterIntra(spec.b, cs, g.subclusterSize);
  else intra = spec.b % cs;
  const offset = Math.min(base + intra, size - 1);
  const room = size - offset;
  let length: number;
  switch (spec.length) {
    case 'sub-cluster':
      length = g.subclusterSize === undefined ? 1 + (spec.c % Math.max(1, cs - (offset % cs))) : subclusterLength(spec.c, cs - (offset % cs), g.subclusterSize);
      break;
    case 'one-cluster':
      length = cs;
      break;
    case 'multi-cluster':
      length = cs * (2 + (spec.c % (multiClustersMax - 1))) - (spec.c % 3 === 0 ? 0 : spec.c % cs);
      break;
    case 'bulk':
      length = Math.min(bulkBytesMax, cs * (1024 + (spec.c % 4096)));
      break;
    case 'to-end':
      length = room;
      break;
    case 'past-end':
      return { offset, length: room + 1 + (spec.c % cs) };
    default: {
      const never: never = spec.length;
      throw new Error(`unknown length ${String(never)}`);
    }
  }
  return { offset, length: Math.max(1, Math.min(length, room)) };
}

/**
 * An offset inside a cluster of an extended-L2 image: a subcluster boundary
 * (half of the draws) or a sector inside a subcluster, so that writes, zeroes
 * and discards start both on and inside subclusters.
 */
function subclusterIntra(b: number, clusterSize: number, subclusterSize: number): number {
  const subcluster = subclusterSize * ((b >> 1) % (clusterSize / subclusterSize));
  return b % 2 === 0 ? subcluster : subcluster + 512 * ((b >> 6) % (subclusterSize / 512));
}

/**
 * A short length on an extended-L2 image, by thirds: 1 to 4 whole subclusters,
 * a few bytes to one subcluster (a partial subcluster), or anything up to the
 * end of the cluster (`room`), as on standard images.
 */
function subclusterLength(c: number, room: number, subclusterSize: number): number {
  switch (c % 3) {
    case 0:
      return subclusterSize * (1 + ((c >> 2) % 4));
    case 1:
      return 1 + ((c >> 2) % subclusterSize);
    default:
      return 1 + ((c >> 2) % Math.max(1, room));
  }
}
