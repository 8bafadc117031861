// Image options biased toward the corners: small clusters (many clusters and L2
// tables in play), 1-bit refcounts (overflow with the first snapshot), 64-bit
// refcounts with 512 B clusters (one reftable cluster covers only 2 MiB of file,
// so the refcount table grows within a few operations), sizes just around an L2
// table's reach and sizes that are not a multiple of the cluster size; zlib
// and zstd alike for version 3.
import fc from 'fast-check';
import { extendedL2ClusterBitsMin, type ImageOptions } from '../../../model/index.js';
import type { QualifiedImageOptionsConstraints } from '../image-options.js';

const clusterBitsWeights: ReadonlyArray<readonly [number, number]> = [
  [9, 10], [10, 3], [11, 2], [12, 3], [13, 1], [14, 1], [15, 1], [16, 2], [17, 1], [18, 1], [19, 1], [20, 1], [21, 1],
];
const refcountBitsWeights: ReadonlyArray<readonly [number, number]> = [
  [1, 3], [2, 2], [4, 1], [8, 1], [16, 3], [32, 1], [64, 3],
];

/** How the cluster count of the disk is picked. */
type SizeShape = 'tiny' | 'l2-boundary' | 'spread' | 'large';

/**
 * A corner drawn as a whole: 512 B clusters, 64-bit refcounts, a large disk —
 * one refcount-table cluster then covers only 4096 clusters (2 MiB of file), so
 * a few bulk writes make the refcount table grow.
 */
type Preset = 'none' | 'reftable-growth';

interface RawOptions {
  preset: Preset;
  version: 2 | 3;
  clusterBits: number;
  refcountBits: number;
  lazyRefcounts: boolean;
  shape: SizeShape;
  count: number;
  /** 0 = cluster aligned; otherwise the last cluster keeps `tailSectors` 512-byte sectors. */
  tailSectors: number;
  /** Extended L2 entries: 128-bit L2 entries, so an L2 table reaches half as far. */
  extendedL2: boolean;
}

function weighted<T>(pairs: ReadonlyArray<readonly [T, number]>): fc.Arbitrary<T> {
  return fc.oneof(...pairs.map(([value, weight]) => ({ arbitrary: fc.constant(value), weight })));
}

export function clustersCountFor(raw: RawOptions, c: QualifiedImageOptionsConstraints): number {
  const clusterSize = 2 ** raw.clusterBits;
  const l2EntriesCount = clusterSize / (raw.extendedL2 ? 16 : 8);
  const countMax = Math.max(1, Math.min(c.clustersCountMax, Math.floor(c.virtualSizeMax / clusterSize)));
  let count: number;
  switch (raw.shape) {
    case 'tiny':
      count = 1 + (raw.count % 4);
      break;
    case 'l2-boundary': {
      // just below, at, or just past the reach of 1–3 L2 tables
      const tables = 1 + (raw.count % 3);
      count = tables * l2EntriesCount + ((raw.count >> 2) % 3) - 1;
      break;
    }
    case 'spread':
      // anywhere within the reach of four L2 tables
      count = 1 + (raw.count % (4 * l2EntriesCount));
      break;
    case 'large':
      // the upper half of what the constraints allow: room for bulk writes to
      // push the file past one refcount-table cluster's reach
      count = Math.ceil(countMax / 2) + (raw.count % Math.ceil(countMax / 2));
      break;
    default: {
      const never: never = raw.shape;
      throw new Error(`unknown size shape ${String(never)}`);
    }
  }
  return Math.max(1, Math.min(count, countMax));
}

/**
 * zlib or zstd, from bit 19 of the drawn count, which the size shapes hardly
 * read: a draw of its own would shift every later draw, so the seeds and paths
 * saved before the option existed would walk other sequences.
 */
function compressionTypeOf(count: number): 'zlib' | 'zstd' {
  return ((count >> 19) & 1) === 1 ? 'zstd' : 'zlib';
}

export function buildImageOptions(c: QualifiedImageOptionsConstraints): fc.Arbitrary<ImageOptions> {
  const clusterBits = weighted(clusterBitsWeights.filter(([b]) => b >= c.clusterBitsMin && b <= c.clusterBitsMax));
  const refcountBits = weighted(refcountBitsWeights.filter(([b]) => c.refcountBits.includes(b)));
  const growthAllowed = c.versions.includes(3) && c.refcountBits.includes(64) && c.clusterBitsMin === 9;
  const raw = fc.record({
    preset: weighted<Preset>([['none', 9], ...(growthAllowed ? [['reftable-growth', 1] as const] : [])]),
    version: fc.constantFrom(...c.versions),
    clusterBits,
    refcountBits,
    lazyRefcounts: fc.boolean(),
    shape: weighted<SizeShape>([['tiny', 2], ['l2-boundary', 2], ['spread', 3], ['large', 1]]),
    count: fc.nat({ max: 1 << 20 }),
    tailSectors: fc.oneof({ arbitrary: fc.constant(0), weight: 2 }, { arbitrary: fc.nat({ max: 4095 }), weight: 1 }),
  });
  // Without extended L2 images nothing more is drawn: a seed keeps its sequences.
  const withExtended: fc.Arbitrary<RawOptions> =
    c.extendedL2Percent === 0
      ? raw.map((r) => ({ ...r, extendedL2: false }))
      : fc.tuple(raw, fc.nat({ max: 99 })).map(([r, percent]) => (percent < c.extendedL2Percent ? asExtended(r, c) : { ...r, extendedL2: false }));
  return withExtended.map((drawn) => {
    const r: RawOptions =
      drawn.preset === 'reftable-growth' && !drawn.extendedL2 ? { ...drawn, version: 3, clusterBits: 9, refcountBits: 64, shape: 'large' } : drawn;
    const clusterSize = 2 ** r.clusterBits;
    const count = clustersCountFor(r, c);
    const sectorsPerCluster = clusterSize / 512;
    const tail = r.tailSectors === 0 ? sectorsPerCluster : 1 + (r.tailSectors % sectorsPerCluster);
    return {
      version: r.version,
      clusterBits: r.clusterBits,
      // version 2 knows only 16-bit refcounts and no lazy refcounts
      refcountBits: r.version === 2 ? 16 : r.refcountBits,
      lazyRefcounts: r.version === 3 && r.lazyRefcounts,
      virtualSize: (count - 1) * clusterSize + tail * 512,
      ...(r.extendedL2 ? { extendedL2: true } : {}),
      // zstd needs the compression-type header field, version 3 only
      compressionType: r.version === 3 && c.zstd ? compressionTypeOf(r.count) : 'zlib',
    };
  });
}

/**
 * Drawn options made extended: version 3, and a cluster size QEMU accepts
 * (16 KiB or more). The small cluster sizes the weights favour map to 16, 32
 * and 64 KiB (subclusters of 512 B, 1 KiB, 2 KiB), so that subclusters are
 * few sectors and ranges of a few sectors cross them often.
 */
function asExtended(r: Omit<RawOptions, 'extendedL2'>, c: QualifiedImageOptionsConstraints): RawOptions {
  const low = Math.max(extendedL2ClusterBitsMin, c.clusterBitsMin);
  const bits = r.clusterBits >= low ? r.clusterBits : Math.min(c.clusterBitsMax, low + (r.clusterBits % 3));
  return { ...r, version: 3, clusterBits: bits, extendedL2: true };
}
