// Which image options the model accepts: qemu-img create's own limits.
import { geometry } from './state.js';
import type { ImageOptions } from './ops.js';
import { extendedL2ClusterBitsMin } from './decode/extended-l2.js';

/** qcow2_co_create: "Extended L2 entries are only supported with cluster sizes of at least 16384 bytes". */
export { extendedL2ClusterBitsMin };

/** Limits on options the model accepts (qemu-img create's own limits, digest §10). */
export const clusterBitsMin = 9;
export const clusterBitsMax = 21;
export const refcountBitsAllowed: readonly number[] = [1, 2, 4, 8, 16, 32, 64];
/** QCOW_MAX_L1_SIZE: 32 MiB of 8-byte entries bounds the virtual size. */
export const l1EntriesMax = (32 * 1024 * 1024) / 8;

/** Throws RangeError for options qemu-img create would refuse. */
export function validateOptions(options: ImageOptions): void {
  const { version, clusterBits, refcountBits, lazyRefcounts, virtualSize, extendedL2 } = options;
  const fail = (what: string) => {
    throw new RangeError(`invalid image options: ${what} (${JSON.stringify(options)})`);
  };
  if (version !== 2 && version !== 3) fail('version must be 2 or 3');
  if (!Number.isInteger(clusterBits) || clusterBits < clusterBitsMin || clusterBits > clusterBitsMax) {
    fail(`clusterBits must be ${clusterBitsMin}..${clusterBitsMax}`);
  }
  if (!refcountBitsAllowed.includes(refcountBits)) fail(`refcountBits must be one of ${refcountBitsAllowed.join(', ')}`);
  if (version === 2 && refcountBits !== 16) fail('version 2 has 16-bit refcounts');
  if (version === 2 && lazyRefcounts) fail('lazy refcounts need version 3');
  if (options.compressionType !== undefined && options.compressionType !== 'zlib' && options.compressionType !== 'zstd') fail('compressionType must be zlib or zstd');
  if (version === 2 && options.compressionType === 'zstd') fail('zstd compression needs version 3');
  if (extendedL2 !== undefined && typeof extendedL2 !== 'boolean') fail('extendedL2 must be a boolean');
  if (extendedL2 === true && version === 2) fail('extended L2 entries need version 3');
  if (extendedL2 === true && clusterBits < extendedL2ClusterBitsMin) fail(`extended L2 entries need clusterBits >= ${extendedL2ClusterBitsMin}`);
  if (!Number.isSafeInteger(virtualSize) || virtualSize < 0 || virtualSize % 512 !== 0) {
    fail('virtualSize must be a non-negative multiple of 512');
  }
  if (Math.ceil(virtualSize / geometry(options).l1Coverage) > l1EntriesMax) fail('virtualSize needs an L1 over 32 MiB');
}

