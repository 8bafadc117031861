import type { Command } from 'commander';
import { NodeFile, Qcow2Error, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { openImage } from '../io-commands/open-image.js';
import { ioChunkBytes } from '../io-commands/run.js';
import { mergeMap } from './map.js';
import { parseImageOptions, roundUpToSector } from './create.js';

// convert streams: at most one ioChunkBytes piece of guest data is in memory
// at a time, whatever the image size. Ranges that read as zeros are never
// written: qcow2 → raw leaves holes (the raw file gets its length from one
// truncate) and raw → qcow2 leaves clusters unallocated, like qemu-img convert.

/** "QFI\xfb": a file starting with it is read as qcow2, anything else as raw. */
const qcow2Magic = [0x51, 0x46, 0x49, 0xfb] as const;
/** Zero detection unit for raw output (qemu-img convert's default -S 4k). */
const rawZeroBlockBytes = 4096;

type Format = 'raw' | 'qcow2';

/**
 * Output cache modes, as qemu-img convert's -t: 'unsafe' (its default for
 * convert) never asks the disk to sync — a crash mid-convert leaves a useless
 * output either way; 'writeback' syncs wherever the engine flushes and at the end.
 */
const cacheModes = ['unsafe', 'writeback'] as const;
type CacheMode = (typeof cacheModes)[number];

/** A BlockFile whose flush only orders nothing and syncs nothing: cache=unsafe. */
class UnsafeCacheFile implements BlockFile {
  constructor(private readonly inner: BlockFile) {}
  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.pread(offset, length);
  }
  pwrite(offset: number, data: Uint8Array): Promise<void> {
    return this.inner.pwrite(offset, data);
  }
  async flush(): Promise<void> {}
  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }
  length(): Promise<number> {
    return this.inner.length();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Source {
  readonly size: number;
  /** Guest ranges that may hold non-zero bytes, in order; everything else reads as zeros. */
  dataRanges(): Promise<Array<readonly [number, number]>>;
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

interface Sink {
  /** Zero runs shorter than this are written, longer ones skipped. */
  readonly zeroBlockBytes: number;
  write(offset: number, data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

async function detectFormat(path: string): Promise<Format> {
  const file = await NodeFile.open(path, { readOnly: true });
  const head = await file.pread(0, qcow2Magic.length);
  await file.close();
  return qcow2Magic.every((byte, i) => head[i] === byte) ? 'qcow2' : 'raw';
}

async function openSource(path: string): Promise<Source> {
  if ((await detectFormat(path)) === 'qcow2') {
    const image = await openImage(path, { readOnly: true });
    return {
      size: image.virtualSize,
      dataRanges: async () => mergeMap(await image.map()).filter((e) => e.data && !e.zero).map((e) => [e.start, e.length] as const),
      read: (offset, length) => image.read(offset, length),
      close: () => image.close(),
    };
  }
  const file = await NodeFile.open(path, { readOnly: true });
  const size = await file.length();
  return { size, dataRanges: async () => [[0, size]], read: (o, l) => file.pread(o, l), close: () => file.close() };
}

interface SinkSpec {
  readonly format: Format;
  readonly cache: CacheMode;
  readonly optionTexts: readonly string[];
}

async function openSink(path: string, size: number, spec: SinkSpec): Promise<Sink> {
  const node = await NodeFile.open(path, { readOnly: false, create: true });
  const file = spec.cache === 'unsafe' ? new UnsafeCacheFile(node) : node;
  if (spec.format === 'raw') {
    return {
      zeroBlockBytes: rawZeroBlockBytes,
      write: (offset, data) => file.pwrite(offset, data),
      close: async () => {
        await file.truncate(size);
        await file.flush();
        await file.close();
      },
    };
  }
  const options = parseImageOptions(spec.optionTexts);
  const image = await Qcow2Image.create(file, { ...options, size: roundUpToSector(size) });
  const info = await image.info();
  return { zeroBlockBytes: info.clusterSize, write: (o, d) => image.write(o, d), close: () => image.close() };
}

/** Copies `[start, start+length)` piece by piece, writing only the runs of non-zero blocks. */
async function copyRange(source: Source, sink: Sink, start: number, length: number): Promise<void> {
  const block = sink.zeroBlockBytes;
  const zero = Buffer.alloc(block);
  const end = start + length;
  for (let at = start; at < end; ) {
    const next = Math.min(end, (Math.floor(at / ioChunkBytes) + 1) * ioChunkBytes);
    const data = await source.read(at, next - at);
    let runStart = -1;
    // Blocks are aligned to multiples of `block` in the guest, so a qcow2 sink
    // sees whole clusters wherever the range allows.
    for (let pos = 0; pos < data.length; ) {
      const blockEnd = Math.min(data.length, (Math.floor((at + pos) / block) + 1) * block - at);
      const piece = Buffer.from(data.buffer, data.byteOffset + pos, blockEnd - pos);
      const isZero = piece.equals(zero.subarray(0, piece.length));
      if (!isZero && runStart < 0) runStart = pos;
      if (isZero && runStart >= 0) {
        await sink.write(at + runStart, data.subarray(runStart, pos));
        runStart = -1;
      }
      pos = blockEnd;
    }
    if (runStart >= 0) await sink.write(at + runStart, data.subarray(runStart));
    at = next;
  }
}

async function convert(input: string, output: string, spec: SinkSpec): Promise<void> {
  const source = await openSource(input);
  try {
    const sink = await openSink(output, source.size, spec);
    for (const [start, length] of await source.dataRanges()) await copyRange(source, sink, start, length);
    await sink.close();
  } finally {
    await source.close();
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  program
    .command('convert')
    .description('copy an image between raw and qcow2 with the engine (input format detected by magic)')
    .argument('<input>', 'qcow2 or raw image')
    .argument('<output>', 'file to create (overwritten if it exists)')
    .option('-O, --output-format <fmt>', 'raw or qcow2', 'raw')
    .option('-o, --options <list>', 'qcow2 output: cluster_size=N,refcount_bits=N,compat=0.10|1.1,lazy_refcounts=on|off', collect, [])
    .option('-t, --cache <mode>', 'output cache mode: unsafe (no sync, qemu-img convert\'s default) or writeback', 'unsafe')
    .action(async (input: string, output: string, opts: { outputFormat: string; options: string[]; cache: string }) => {
      const format = opts.outputFormat;
      const cache = cacheModes.find((mode) => mode === opts.cache);
      if (cache === undefined) {
        throw new CliError(`convert: unsupported cache mode '${opts.cache}' (${cacheModes.join(' or ')})`, exitCodes.usage);
      }
      if (format !== 'raw' && format !== 'qcow2') {
        throw new CliError(`convert: unsupported output format '${format}' (raw or qcow2)`, exitCodes.usage);
      }
      if (format === 'raw' && opts.options.length > 0) {
        throw new CliError('convert: -o options apply only to -O qcow2', exitCodes.usage);
      }
      if (format === 'qcow2') parseImageOptions(opts.options); // usage errors before any file is touched
      try {
        await convert(input, output, { format, cache, optionTexts: opts.options });
      } catch (error) {
        if (error instanceof Qcow2Error) throw new CliError(`convert '${input}' to '${output}': ${error.message}`);
        throw error;
      }
    });
}
