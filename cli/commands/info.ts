import { realpath, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { backingChainDepthMax, fullBackingPath, NodeFile, probeFormat, type BitmapInfo, type ImageInfo } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import { forceShareFlags, forceShareHelp, openImage } from '../io-commands/open-image.js';
import { outputOf } from '../io-commands/output.js';
import { formatSize } from '../sizes.js';
import { formatSnapshotTable, snapshotJson, type ListedSnapshot } from './snapshot.js';

type Json = string | number | bigint | boolean | readonly Json[] | { readonly [key: string]: Json };

/**
 * qemu-img's JSON layout (4-space indent, "key": value), with bigints printed
 * as plain integers: JSON.stringify can neither, and qemu's members such as
 * icount are 64-bit.
 */
export function formatQemuJson(value: Json, indent = 0): string {
  const pad = ' '.repeat(indent + 4);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) {
    // QEMU's pretty printer breaks the line even for an empty list.
    if (value.length === 0) return `[\n${' '.repeat(indent)}]`;
    return `[\n${value.map((v: Json) => pad + formatQemuJson(v, indent + 4)).join(',\n')}\n${' '.repeat(indent)}]`;
  }
  const entries = Object.entries(value as { readonly [key: string]: Json });
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${formatQemuJson(v, indent + 4)}`).join(',\n')}\n${' '.repeat(indent)}}`;
}

/** ImageInfoSpecificQCow2 members, in the order qemu-img 7.2 prints them. */
export function formatSpecificData(info: ImageInfo): { [key: string]: Json } {
  if (info.version === 2) return { compat: '0.10', 'compression-type': info.compressionType, 'refcount-bits': info.refcountBits };
  return {
    compat: '1.1',
    'compression-type': info.compressionType,
    'lazy-refcounts': info.lazyRefcounts,
    ...(info.bitmaps.length > 0 ? { bitmaps: info.bitmaps.map(bitmapJson) } : {}),
    'refcount-bits': info.refcountBits,
    corrupt: info.corrupt,
    'extended-l2': info.extendedL2 === true,
  };
}

/** Qcow2BitmapInfo (qcow2_get_bitmap_info_list): flags in-use then auto. */
function bitmapJson(bm: BitmapInfo): { [key: string]: Json } {
  const flags = [...(bm.inUse ? ['in-use'] : []), ...(bm.auto ? ['auto'] : [])];
  return { flags, name: bm.name, granularity: bm.granularity };
}

/** `qemu-img info --output=json`, members in qemu-img 7.2's order. */
export function infoJson(info: ImageInfo, filename: string, actualSize: number): { [key: string]: Json } {
  const snapshots = info.snapshots as readonly ListedSnapshot[];
  return {
    ...(info.backingFormat === undefined ? {} : { 'backing-filename-format': info.backingFormat }),
    ...(snapshots.length > 0 ? { snapshots: snapshots.map((s) => snapshotJson(s) as { [key: string]: Json }) } : {}),
    'virtual-size': info.virtualSize,
    filename,
    'cluster-size': info.clusterSize,
    format: 'qcow2',
    'actual-size': actualSize,
    'format-specific': { type: 'qcow2', data: formatSpecificData(info) },
    ...(info.backingFile === undefined
      ? {}
      : { 'full-backing-filename': fullBackingPath(filename, info.backingFile), 'backing-filename': info.backingFile }),
    'dirty-flag': info.dirty,
  };
}

/** `qemu-img info` human output (block/qapi.c bdrv_image_info_dump). */
export function infoText(info: ImageInfo, filename: string, actualSize: number): string[] {
  const lines = [
    `image: ${filename}`,
    'file format: qcow2',
    `virtual size: ${formatSize(info.virtualSize)} (${info.virtualSize} bytes)`,
    `disk size: ${formatSize(actualSize)}`,
    `cluster_size: ${info.clusterSize}`,
  ];
  if (info.dirty) lines.push('cleanly shut down: no');
  if (info.backingFile !== undefined) {
    const full = fullBackingPath(filename, info.backingFile);
    lines.push(`backing file: ${info.backingFile}${full === info.backingFile ? '' : ` (actual path: ${full})`}`);
  }
  if (info.backingFormat !== undefined) lines.push(`backing file format: ${info.backingFormat}`);
  if (info.snapshots.length > 0) lines.push(...formatSnapshotTable(info.snapshots));
  lines.push('Format specific information:');
  dumpHuman(formatSpecificData(info), 1, lines);
  return lines;
}

/**
 * block/qapi.c dump_qdict / dump_qlist: 4 spaces per level, dashes in keys as
 * spaces, a composite value on the lines below its key, list items as `[i]`.
 */
function dumpHuman(value: { readonly [key: string]: Json } | readonly Json[], level: number, lines: string[]): void {
  const pad = ' '.repeat(level * 4);
  const entries: [string, Json][] = Array.isArray(value)
    ? value.map((v: Json, i) => [`[${i}]`, v])
    : Object.entries(value as { readonly [key: string]: Json }).map(([k, v]) => [k.replaceAll('-', ' '), v]);
  for (const [key, v] of entries) {
    if (typeof v === 'object') {
      lines.push(`${pad}${key}:`);
      dumpHuman(v, level + 1, lines);
    } else {
      lines.push(`${pad}${key}: ${String(v)}`);
    }
  }
}


/** Bytes the file occupies on disk (st_blocks × 512), qemu-img's "disk size". */
export async function allocatedBytes(path: string): Promise<number> {
  const s = await stat(path);
  return s.blocks * 512;
}

/** One image of `info --backing-chain`: a qcow2 layer, or a raw file (which qemu-img describes in four lines). */
export type ChainImage =
  | { readonly format: 'qcow2'; readonly filename: string; readonly info: ImageInfo; readonly actualSize: number }
  | { readonly format: 'raw'; readonly filename: string; readonly virtualSize: number; readonly actualSize: number };

/** `qemu-img info --output=json` of a raw file. */
export function rawInfoJson(image: { filename: string; virtualSize: number; actualSize: number }): { [key: string]: Json } {
  return { 'virtual-size': image.virtualSize, filename: image.filename, format: 'raw', 'actual-size': image.actualSize, 'dirty-flag': false };
}

/** `qemu-img info` of a raw file. */
export function rawInfoText(image: { filename: string; virtualSize: number; actualSize: number }): string[] {
  return [
    `image: ${image.filename}`,
    'file format: raw',
    `virtual size: ${formatSize(image.virtualSize)} (${image.virtualSize} bytes)`,
    `disk size: ${formatSize(image.actualSize)}`,
  ];
}

/**
 * The images of `FILE`'s backing chain, the top first, each opened alone
 * (without its backing file) as qemu-img info does, names resolved as QEMU
 * resolves them. Everything is collected before anything is printed, as
 * qemu-img does: a missing file fails the whole command. A loop is refused
 * with qemu-img's words; a spelling of the same file (by real path) counts too.
 */
export async function collectChain(file: string, forceShare: boolean): Promise<ChainImage[]> {
  const images: ChainImage[] = [];
  const seen = new Set<string>();
  let filename = file;
  let format: string | undefined = 'qcow2';
  for (;;) {
    const real = await realpath(filename).catch(() => filename);
    if (seen.has(real)) throw new CliError(`Backing file '${filename}' creates an infinite loop.`);
    if (seen.size > backingChainDepthMax) throw new CliError(`backing chain of '${file}' is deeper than ${backingChainDepthMax} files`);
    seen.add(real);
    if (format === undefined) format = await probeFile(filename);
    if (format === 'raw') {
      const raw = await NodeFile.open(filename, { readOnly: true, forceShare }).catch((error: unknown) => {
        throw new CliError(`could not open '${filename}': ${(error as Error).message}`);
      });
      const virtualSize = await raw.length();
      await raw.close();
      images.push({ format: 'raw', filename, virtualSize, actualSize: await allocatedBytes(filename) });
      return images;
    }
    if (format !== 'qcow2') throw new CliError(`'${filename}': backing format '${format}' is not supported (qcow2 or raw)`);
    const image = await openImage(filename, { readOnly: true, forceShare, backing: false });
    const info = await image.info();
    await image.close();
    images.push({ format: 'qcow2', filename, info, actualSize: await allocatedBytes(filename) });
    if (info.backingFile === undefined) return images;
    filename = fullBackingPath(filename, info.backingFile);
    format = info.backingFormat;
  }
}

async function probeFile(filename: string): Promise<'qcow2' | 'raw'> {
  try {
    const file = await NodeFile.open(filename, { readOnly: true, forceShare: true });
    const head = await file.pread(0, 4);
    await file.close();
    return probeFormat(head);
  } catch (error) {
    throw new CliError(`could not open '${filename}': ${(error as Error).message}`);
  }
}

function chainJson(image: ChainImage): { [key: string]: Json } {
  return image.format === 'raw' ? rawInfoJson(image) : infoJson(image.info, image.filename, image.actualSize);
}

function chainText(image: ChainImage): string[] {
  return image.format === 'raw' ? rawInfoText(image) : infoText(image.info, image.filename, image.actualSize);
}

export function register(program: Command): void {
  addFormatOption(program
    .command('info'))
    .description('show what the engine reads from an image header (like qemu-img info); the backing file is not opened')
    .argument('<file>', 'qcow2 image')
    .option('--output <format>', 'human or json', 'human')
    .option('--backing-chain', 'describe every image of the backing chain, the top first (a JSON list)')
    .option(forceShareFlags, forceShareHelp)
    .action(async (file: string, opts: { output: string; forceShare?: boolean; format?: string; backingChain?: boolean }, cmd: Command) => {
      checkedFormat('info', opts.format);
      const format = parseOutputFormat(opts.output);
      const out = outputOf(cmd).out;
      if (opts.backingChain === true) {
        const chain = await collectChain(file, opts.forceShare === true);
        if (format === 'json') out(formatQemuJson(chain.map(chainJson)));
        else out(chain.map((image) => chainText(image).join('\n')).join('\n\n'));
        return;
      }
      const image = await openImage(file, { readOnly: true, forceShare: opts.forceShare === true, backing: false });
      const info = await image.info();
      await image.close();
      const actualSize = await allocatedBytes(file);
      if (format === 'json') out(formatQemuJson(infoJson(info, file, actualSize)));
      else for (const line of infoText(info, file, actualSize)) out(line);
    });
}

/** --output takes qemu-img's two words. */
export function parseOutputFormat(text: string): 'human' | 'json' {
  if (text === 'human' || text === 'json') return text;
  throw new CliError(`--output '${text}': expected human or json`, exitCodes.usage);
}
