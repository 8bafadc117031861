// Public front for image options (style.md §2): validates the constraints, fills
// the defaults once, delegates to _internals/image-options.ts.
import type fc from 'fast-check';
import { extendedL2ClusterBitsMin, type ImageOptions } from '../../model/index.js';
import { buildImageOptions } from './_internals/image-options.js';

export interface ImageOptionsConstraints {
  /** Default [2, 3]. */
  readonly versions?: readonly (2 | 3)[];
  /** Default 9 (512 B). */
  readonly clusterBitsMin?: number;
  /** Default 21 (2 MiB). */
  readonly clusterBitsMax?: number;
  /** Refcount widths for version 3 (version 2 is always 16). Default all of 1 … 64. */
  readonly refcountBits?: readonly number[];
  /** Largest initial disk, in clusters. Default 16384 (8 MiB of 512 B clusters). */
  readonly clustersCountMax?: number;
  /** Largest initial disk, in bytes. Default 8 MiB, so whole-disk reads stay cheap. */
  readonly virtualSizeMax?: number;
  /**
   * Chance, in percent, that an image has extended L2 entries (version 3,
   * clusters of 16 KiB or more). Default 0: nothing extra is drawn, so the
   * sequences of a seed stay what they were before subclusters existed.
   */
  readonly extendedL2Percent?: number;
  /** Whether version 3 images may use zstd compression (about half of them). Default true. */
  readonly zstd?: boolean;
}

export type QualifiedImageOptionsConstraints = Required<ImageOptionsConstraints>;

export const refcountWidths: readonly number[] = [1, 2, 4, 8, 16, 32, 64];
export const clusterBitsMin = 9;
export const clusterBitsMax = 21;

export function qualifyImageOptionsConstraints(c: ImageOptionsConstraints = {}): QualifiedImageOptionsConstraints {
  const q: QualifiedImageOptionsConstraints = {
    versions: c.versions ?? [2, 3],
    clusterBitsMin: c.clusterBitsMin ?? clusterBitsMin,
    clusterBitsMax: c.clusterBitsMax ?? clusterBitsMax,
    refcountBits: c.refcountBits ?? refcountWidths,
    clustersCountMax: c.clustersCountMax ?? 16384,
    virtualSizeMax: c.virtualSizeMax ?? 8 * 1024 * 1024,
    extendedL2Percent: c.extendedL2Percent ?? 0,
    zstd: c.zstd ?? true,
  };
  if (q.versions.length === 0 || q.versions.some((v) => v !== 2 && v !== 3)) {
    throw new RangeError(`versions must be a non-empty subset of [2, 3], got ${JSON.stringify(q.versions)}`);
  }
  if (!(clusterBitsMin <= q.clusterBitsMin && q.clusterBitsMin <= q.clusterBitsMax && q.clusterBitsMax <= clusterBitsMax)) {
    throw new RangeError(`cluster bits must satisfy ${clusterBitsMin} <= min <= max <= ${clusterBitsMax}, got ${q.clusterBitsMin}..${q.clusterBitsMax}`);
  }
  if (q.refcountBits.length === 0 || q.refcountBits.some((b) => !refcountWidths.includes(b))) {
    throw new RangeError(`refcountBits must be a non-empty subset of ${refcountWidths.join(', ')}`);
  }
  if (!Number.isSafeInteger(q.clustersCountMax) || q.clustersCountMax < 1) {
    throw new RangeError(`clustersCountMax must be a positive integer, got ${q.clustersCountMax}`);
  }
  if (!Number.isSafeInteger(q.virtualSizeMax) || q.virtualSizeMax < 512) {
    throw new RangeError(`virtualSizeMax must be an integer >= 512, got ${q.virtualSizeMax}`);
  }
  if (!Number.isSafeInteger(q.extendedL2Percent) || q.extendedL2Percent < 0 || q.extendedL2Percent > 100) {
    throw new RangeError(`extendedL2Percent must be an integer 0..100, got ${q.extendedL2Percent}`);
  }
  if (q.extendedL2Percent > 0 && (!q.versions.includes(3) || q.clusterBitsMax < extendedL2ClusterBitsMin)) {
    throw new RangeError(`extended L2 images need version 3 and clusterBitsMax >= ${extendedL2ClusterBitsMin}`);
  }
  return q;
}

/** Image options for one sequence: version, geometry, refcount width, lazy refcounts, size. */
export function imageOptions(constraints: ImageOptionsConstraints = {}): fc.Arbitrary<ImageOptions> {
  return buildImageOptions(qualifyImageOptionsConstraints(constraints));
}
