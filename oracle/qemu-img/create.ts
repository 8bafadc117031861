// `qemu-img create -f qcow2`: QEMU-written images to start from, with the geometry
// options the model knows (ImageOptions) mapped to qemu-img's -o names.
import type { ImageOptions } from '../../model/ops.js';
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';

export type CreateOptionValue = string | number | boolean;

export interface QemuCreateConstraints {
  /** Virtual size in bytes (qemu-img requires a multiple of 512 for qcow2). */
  readonly size: number;
  readonly clusterSize?: number;
  readonly refcountBits?: number;
  /** "0.10" = version 2, "1.1" = version 3 (QEMU's default). */
  readonly compat?: '0.10' | '1.1';
  readonly lazyRefcounts?: boolean;
  /** `extended_l2=on`: 32 subclusters a cluster (compat 1.1 and clusters of 16 KiB or more). */
  readonly extendedL2?: boolean;
  /** compression_type=zlib|zstd (zstd needs compat 1.1). */
  readonly compressionType?: 'zlib' | 'zstd';
  /** Any other `-o` option, passed through verbatim (e.g. `{ preallocation: 'metadata' }`). */
  readonly extraOptions?: Readonly<Record<string, CreateOptionValue>>;
}

export async function qemuImgCreate(path: string, constraints: QemuCreateConstraints): Promise<void> {
  const options: Record<string, CreateOptionValue> = {};
  if (constraints.clusterSize !== undefined) options.cluster_size = constraints.clusterSize;
  if (constraints.refcountBits !== undefined) options.refcount_bits = constraints.refcountBits;
  if (constraints.compat !== undefined) options.compat = constraints.compat;
  if (constraints.lazyRefcounts !== undefined) options.lazy_refcounts = constraints.lazyRefcounts;
  if (constraints.extendedL2 !== undefined) options.extended_l2 = constraints.extendedL2;
  if (constraints.compressionType !== undefined) options.compression_type = constraints.compressionType;
  Object.assign(options, constraints.extraOptions);
  const args = ['create', '-q', '-f', 'qcow2'];
  const formatted = formatCreateOptions(options);
  if (formatted !== '') args.push('-o', formatted);
  args.push(path, String(constraints.size));
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
}

/** The create constraints that give an image with exactly these model options. */
export function createConstraints(options: ImageOptions): QemuCreateConstraints {
  return {
    size: options.virtualSize,
    clusterSize: 2 ** options.clusterBits,
    refcountBits: options.refcountBits,
    compat: options.version === 2 ? '0.10' : '1.1',
    // lazy_refcounts=on needs compat=1.1; "off" is accepted (and the default) for 0.10.
    lazyRefcounts: options.version === 3 && options.lazyRefcounts,
    // only when on, so that the command line of a standard image stays as it was
    ...(options.extendedL2 === true ? { extendedL2: true } : {}),
    compressionType: options.compressionType ?? 'zlib',
  };
}

/**
 * `key=value,key=value` for `-o`. Booleans become on/off; a comma inside a value is
 * doubled, which is how QEMU's option parser escapes it.
 */
export function formatCreateOptions(options: Readonly<Record<string, CreateOptionValue>>): string {
  return Object.entries(options)
    .map(([key, value]) => {
      const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
      return `${key}=${text.replaceAll(',', ',,')}`;
    })
    .join(',');
}
