// `qemu-img convert`: what QEMU reads from an image, rendered as raw bytes or
// re-encoded as a fresh qcow2 (-O raw|qcow2, -o options, -c compression).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';
import { shareFlag, type ReadConstraints } from './read-constraints.js';
import { withTempDir } from '../temp.js';
import { formatCreateOptions, type CreateOptionValue } from './create.js';

export interface QemuConvertConstraints {
  readonly sourceFormat?: string;
  readonly outputFormat: 'raw' | 'qcow2';
  /** `-o` options for the output, e.g. `{ cluster_size: 4096, compat: '1.1' }`. */
  readonly options?: Readonly<Record<string, CreateOptionValue>>;
  /** `-c`: write compressed clusters (qcow2 output only). */
  readonly compress?: boolean;
  /** `-U`: read a source another process (e.g. a qemu-io session) holds open. */
  readonly forceShare?: boolean;
}

export async function qemuImgConvert(source: string, target: string, constraints: QemuConvertConstraints): Promise<void> {
  const args = ['convert', ...shareFlag(constraints), '-f', constraints.sourceFormat ?? 'qcow2', '-O', constraints.outputFormat];
  if (constraints.compress === true) args.push('-c');
  const options = formatCreateOptions(constraints.options ?? {});
  if (options !== '') args.push('-o', options);
  args.push(source, target);
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
}

/**
 * The guest-visible bytes of an image as QEMU reads them (convert -O raw through
 * a temp file): [0, virtual size). With `forceShare`, of an image a qemu-io
 * session holds: it sees what that session has flushed.
 */
export function qemuImgReadRaw(path: string, constraints: ReadConstraints = {}): Promise<Uint8Array> {
  return withTempDir(async (dir) => {
    const target = join(dir, 'guest.raw');
    await qemuImgConvert(path, target, {
      outputFormat: 'raw',
      ...(constraints.format === undefined ? {} : { sourceFormat: constraints.format }),
      ...(constraints.forceShare === true ? { forceShare: true } : {}),
    });
    return new Uint8Array(await readFile(target));
  });
}
