import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { NodeFile, Qcow2Error, Qcow2Image, type BlockFile } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import { forceShareFlags, forceShareHelp, openImage } from '../io-commands/open-image.js';
import { refuseOutputThatIsAnInput } from '../io-commands/same-file.js';
import { ioChunkBytes } from '../io-commands/run.js';
import { mergeMap } from './map.js';
import { parseImageOptions, roundUpToSector } from './create.js';

// convert streams: at most one ioChunkBytes piece of guest data is in memory
// at a time, whatever the image size. Ranges that read as zeros are never
// written: qcow2 → raw leaves holes (the raw file gets its length from one
// truncate) and raw → qcow2 leaves clusters unallocated, like qemu-img convert.

/** "QFI\xfb": a file starting with it is read as qcow2, anything else as raw. */
const qcow2Magic = [0x51, 0x46, 0x49, 0xfb] as const;
/** Zero detection unit for raw output and extended-L2 output (qemu-img convert's default -S 4k). */
const rawZeroBlockBytes = 4096;

type Format = 'raw' | 'qcow2';
const formats: readonly Format[] = ['qcow2', 'raw'];

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

/**
 * Every input, raw or qcow2, is locked as qemu-img convert locks its input
 * (seen with strace: bytes 100, 201 and 203, as any reader), or with -U byte 100 only.
 */
async function detectFormat(path: string, forceShare: boolean): Promise<Format> {
  const file = await NodeFile.open(path, { readOnly: true, forceShare });
  const head = await file.pread(0, qcow2Magic.length);
  await file.close();
  return qcow2Magic.every((byte, i) => head[i] === byte) ? 'qcow2' : 'raw';
}

/** The input as `-f` names it, else as its magic says. */
async function openSource(path: string, format: Format | undefined, forceShare: boolean): Promise<Source> {
  if ((format ?? (await detectFormat(path, forceShare))) === 'qcow2') {
    const image = await openImage(path, { readOnly: true, forceShare });
    return {
      size: image.virtualSize,
      dataRanges: async () => mergeMap(await image.map()).filter((e) => e.data && !e.zero).map((e) => [e.start, e.length] as const),
      read: (offset, length) => image.read(offset, length),
      close: () => image.close(),
    };
  }
  return openRawSource(path, forceShare);
}

/**
 * Raw input, read into two buffers in turn (no allocation per piece): a piece
 * stays valid while the next one is read, which is all copyRange needs.
 */
async function openRawSource(path: string, forceShare: boolean): Promise<Source> {
  const file = await NodeFile.open(path, { readOnly: true, forceShare });
  const size = await file.length();
  const buffers = [Buffer.allocUnsafe(ioChunkBytes), Buffer.allocUnsafe(ioChunkBytes)] as const;
  let turn = 0;
  return {
    size,
    dataRanges: async () => [[0, size]],
    read: async (offset, length) => {
      assert(length <= ioChunkBytes, 'a piece fits its buffer');
      const buffer = buffers[turn++ % 2 === 0 ? 0 : 1].subarray(0, length);
      await file.preadInto(offset, buffer); // past EOF (the file shrank meanwhile) reads as zeros
      return buffer;
    },
    close: () => file.close(),
  };
}

interface SinkSpec {
  readonly format: Format;
  readonly cache: CacheMode;
  readonly optionTexts: readonly string[];
  /** `-c`: qcow2 output as compressed clusters (zero clusters stay unallocated). */
  readonly compress: boolean;
}

interface ConvertSpec extends SinkSpec {
  /** -U: read the input even while another process writes it. */
  readonly forceShare: boolean;
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
  const write = spec.compress ? (o: number, d: Uint8Array) => image.writeCompressed(o, wholeClusters(o, d, info.clusterSize, image.virtualSize)) : (o: number, d: Uint8Array) => image.write(o, d);
  // With extended L2 a partial write allocates only its subclusters, so zeros are
  // skipped in qemu-img convert's own 4 KiB unit (-S 4k), as it does.
  const zeroBlockBytes = info.extendedL2 === true && !spec.compress ? rawZeroBlockBytes : info.clusterSize;
  const close = async () => {
    if (spec.compress) {
      // qemu-img convert -c ends with an empty compressed write, which rounds the file's
      // end up to a sector (qcow2_co_pwritev_compressed_part with bytes == 0)
      await image.flush();
      const length = await file.length();
      if (length !== roundUpToSector(length)) await file.truncate(roundUpToSector(length));
    }
    await image.close();
  };
  return { zeroBlockBytes, write, close };
}

/**
 * A run of whole clusters for a compressed write: runs start on a cluster
 * (zero detection is per cluster) and only the last one of the input can end
 * inside one, where it is padded with zeros up to the cluster or the disk end.
 */
function wholeClusters(offset: number, data: Uint8Array, clusterSize: number, virtualSize: number): Uint8Array {
  assert(offset % clusterSize === 0, 'compressed runs start on a cluster');
  const end = Math.min(virtualSize, Math.ceil((offset + data.length) / clusterSize) * clusterSize);
  if (end === offset + data.length) return data;
  const padded = new Uint8Array(end - offset);
  padded.set(data);
  return padded;
}

/**
 * Copies `[start, start+length)` in ioChunkBytes pieces, reading the next piece
 * while the current one is written (two pieces in memory at most).
 */
async function copyRange(source: Source, sink: Sink, start: number, length: number): Promise<void> {
  const end = start + length;
  const nextEnd = (at: number) => Math.min(end, (Math.floor(at / ioChunkBytes) + 1) * ioChunkBytes);
  const readFrom = (at: number) => {
    const promise = source.read(at, nextEnd(at) - at);
    promise.catch(() => {}); // rejected while a write is pending: still thrown by the await below
    return promise;
  };
  let pending = start < end ? readFrom(start) : undefined;
  for (let at = start; pending !== undefined; at = nextEnd(at)) {
    const data = await pending;
    pending = nextEnd(at) < end ? readFrom(nextEnd(at)) : undefined;
    await writeNonZeroRuns(sink, at, data);
  }
}

/**
 * Writes the runs of `data` (guest offset `at`) that are not all zeros, tested
 * block by block; blocks are aligned in the guest, so a qcow2 sink gets whole
 * clusters wherever the range allows and zero clusters stay unallocated.
 */
async function writeNonZeroRuns(sink: Sink, at: number, data: Uint8Array): Promise<void> {
  const block = sink.zeroBlockBytes;
  const zero = Buffer.alloc(block);
  let runStart = -1;
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
}

async function convert(input: string, inputFormat: Format | undefined, output: string, spec: ConvertSpec): Promise<void> {
  // Creating the output empties it: converting a file onto itself would destroy the input.
  await refuseOutputThatIsAnInput('convert', output, [input]);
  const source = await openSource(input, inputFormat, spec.forceShare);
  try {
    const sink = await openSink(output, source.size, spec);
    for (const [start, length] of await source.dataRanges()) await copyRange(source, sink, start, length);
    await sink.close();
  } finally {
    await source.close();
  }
}

/** A Node file-system error (ENOENT, EACCES, …): the user's problem, not a bug. */
function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string';
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  addFormatOption(program
    .command('convert'), formats)
    .description('copy an image between raw and qcow2 with the engine (input format detected by magic)')
    .argument('<input>', 'qcow2 or raw image')
    .argument('<output>', 'file to create (overwritten if it exists)')
    .option('-O, --output-format <fmt>', 'raw or qcow2', 'raw')
    .option('-o, --options <list>', 'qcow2 output: cluster_size=N,refcount_bits=N,compat=0.10|1.1,lazy_refcounts=on|off', collect, [])
    .option('-c, --compress', 'qcow2 output: write every data cluster compressed, like qemu-img convert -c', false)
    .option('-t, --cache <mode>', 'output cache mode: unsafe (no sync, qemu-img convert\'s default) or writeback', 'unsafe')
    .option(forceShareFlags, `${forceShareHelp}: the input`)
    .action(async (input: string, output: string, opts: { format?: string; outputFormat: string; options: string[]; cache: string; compress: boolean; forceShare?: boolean }) => {
      const inputFormat = checkedFormat('convert', opts.format, formats);
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
      if (format === 'raw' && opts.compress) {
        throw new CliError('convert: -c (compression) applies only to -O qcow2', exitCodes.usage);
      }
      if (format === 'qcow2') parseImageOptions(opts.options); // usage errors before any file is touched
      try {
        await convert(input, inputFormat, output, { format, cache, optionTexts: opts.options, compress: opts.compress, forceShare: opts.forceShare === true });
      } catch (error) {
        if (error instanceof Qcow2Error || isSystemError(error)) {
          throw new CliError(`convert '${input}' to '${output}': ${error.message}`);
        }
        throw error;
      }
    });
}
