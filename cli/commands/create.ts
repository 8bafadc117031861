import type { Command } from 'commander';
import { Qcow2Error, Qcow2Image, type BackingFormat, type CreateOptions } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { checkedFormat } from '../format-option.js';
import { outputOf } from '../io-commands/output.js';
import { parseSize } from '../sizes.js';

/** The -o options qemu-img create -f qcow2 takes that the engine implements. */
export type ImageCreateOptions = Omit<CreateOptions, 'size' | 'backingFile' | 'backingFormat'>;

const sectorBytes = 512;
const clusterBytesMin = 512;
const clusterBytesMax = 2 << 20;
const refcountBitsMax = 64;

const optionKeys = ['cluster_size', 'refcount_bits', 'compat', 'lazy_refcounts', 'compression_type', 'extended_l2'] as const;
type OptionKey = (typeof optionKeys)[number];

function usage(message: string): CliError {
  return new CliError(message, exitCodes.usage);
}

/**
 * Parses qemu-img's `-o key=value,key=value` (several -o are joined with
 * commas, as qemu-img does) and applies qemu-img's own rules with its words:
 * cluster size a power of two in 512…2048k, refcount width a power of two
 * ≤ 64, widths other than 16 and lazy refcounts only with compat=1.1.
 */
export function parseImageOptions(texts: readonly string[]): ImageCreateOptions {
  const options: { -readonly [K in keyof ImageCreateOptions]: ImageCreateOptions[K] } = {};
  for (const [k, value] of parseOptionList(texts)) {
    switch (k) {
      case 'cluster_size': {
        const bytes = parseSize(value, 'cluster_size');
        if (bytes < clusterBytesMin || bytes > clusterBytesMax || (bytes & (bytes - 1)) !== 0) {
          throw usage(`cluster_size ${value}: cluster size must be a power of two between 512 and 2048k`);
        }
        options.clusterSize = bytes;
        break;
      }
      case 'refcount_bits': {
        const bits = /^[0-9]+$/.test(value) ? Number(value) : NaN;
        if (!(bits >= 1 && bits <= refcountBitsMax) || (bits & (bits - 1)) !== 0) {
          throw usage(`refcount_bits ${value}: refcount width must be a power of two and may not exceed 64 bits`);
        }
        options.refcountBits = bits;
        break;
      }
      case 'compat':
        if (value === '0.10' || value === 'v2') options.compat = '0.10';
        else if (value === '1.1' || value === 'v3') options.compat = '1.1';
        else throw usage(`compat ${value}: expected 0.10 (v2) or 1.1 (v3)`);
        break;
      case 'lazy_refcounts':
        options.lazyRefcounts = parseOnOff(value, k);
        break;
      case 'compression_type':
        if (value !== 'zlib' && value !== 'zstd') throw usage(`Parameter 'compression-type' does not accept value '${value}'`);
        options.compressionType = value;
        break;
      case 'extended_l2':
        // Its rules (compat 1.1, clusters of 16 KiB or more) are the engine's, as in qemu-img: exit 1 after the Formatting line.
        options.extendedL2 = parseOnOff(value, k);
        break;
      default: {
        const never: never = k;
        throw new Error(`unhandled -o option ${String(never)}`);
      }
    }
  }
  if (options.compat === '0.10' && options.lazyRefcounts === true) {
    throw usage('lazy refcounts are only supported with compat=1.1');
  }
  if (options.compat === '0.10' && options.refcountBits !== undefined && options.refcountBits !== 16) {
    throw usage('refcount widths other than 16 bits require compat=1.1');
  }
  if (options.compat === '0.10' && options.compressionType === 'zstd') {
    throw usage('Non-zlib compression type is only supported with compatibility level 1.1 and above (use version=v3 or greater)');
  }
  return options;
}

/** The key=value pairs of -o lists in the order given (a repeated key: the last wins, as in qemu-img). */
export function parseOptionList(texts: readonly string[]): Map<OptionKey, string> {
  const pairs = new Map<OptionKey, string>();
  for (const item of texts.join(',').split(',').filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (!isOptionKey(key)) throw usage(`unknown -o option '${key}' (known: ${optionKeys.join(', ')})`);
    if (value === '') throw usage(`-o option '${key}' needs a value`);
    pairs.set(key, value);
  }
  return pairs;
}

function isOptionKey(key: string): key is OptionKey {
  return (optionKeys as readonly string[]).includes(key);
}

/** qemu's boolean option words (util/qemu-option.c parse_option_bool and its aliases). */
function parseOnOff(value: string, key: string): boolean {
  if (['on', 'yes', 'y', 'true'].includes(value)) return true;
  if (['off', 'no', 'n', 'false'].includes(value)) return false;
  throw usage(`${key} ${value}: expected on or off`);
}

/** qemu-img create rounds the size up to whole 512-byte sectors. */
export function roundUpToSector(bytes: number): number {
  return Math.ceil(bytes / sectorBytes) * sectorBytes;
}

/**
 * qemu-img's "Formatting …" line: the size as requested (before rounding) and
 * compat as spelled on the command line, defaults filled in, as qemu-img prints them.
 */
export function formattingLine(file: string, requestedSize: number, optionTexts: readonly string[], backing?: { file: string; format: string }): string {
  const options = parseImageOptions(optionTexts);
  const given = parseOptionList(optionTexts).get('compat');
  const compat = given === undefined ? '' : ` compat=${given}`;
  const extendedL2 = parseOptionList(optionTexts).get('extended_l2') ?? 'off';
  const size = requestedSize;
  const backingText = backing === undefined ? '' : ` backing_file=${backing.file} backing_fmt=${backing.format}`;
  return (
    `Formatting '${file}', fmt=qcow2 cluster_size=${options.clusterSize ?? 65536} extended_l2=${extendedL2} ` +
    `compression_type=${options.compressionType ?? 'zlib'} size=${size}${compat}${backingText} lazy_refcounts=${options.lazyRefcounts === true ? 'on' : 'off'} ` +
    `refcount_bits=${options.refcountBits ?? 16}`
  );
}

/** -F: the two backing formats the engine opens. */
export function parseBackingFormat(text: string): BackingFormat {
  if (text === 'qcow2' || text === 'raw') return text;
  throw usage(`-F ${text}: backing format must be qcow2 or raw`);
}

/**
 * The size of the backing file `name` of the image to be created at `file`
 * (qemu-img create opens it unless -u, for its size and to check it opens).
 */
async function backingSize(file: string, name: string, format: BackingFormat): Promise<number> {
  try {
    const layer = await Qcow2Image.openBackingFile(file, name, format);
    const size = layer.size;
    await layer.close();
    return size;
  } catch (error) {
    if (error instanceof Qcow2Error) throw new CliError(`${file}: ${error.message}; could not open backing image`);
    throw error;
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

interface CreateFlags {
  format: string;
  options: string[];
  quiet?: boolean;
  backingFile?: string;
  backingFormat?: string;
  unsafe?: boolean;
}

export function register(program: Command): void {
  program
    .command('create')
    .description('create a new qcow2 image with the engine (like qemu-img create -f qcow2 [-b FILE -F FMT])')
    .argument('<file>', 'image file to create (overwritten if it exists)')
    .argument('[size]', 'virtual size: bytes, or with a suffix k, M, G, T (rounded up to 512); default with -b: the backing file\'s size')
    .option('-f, --format <fmt>', 'image format (only qcow2)', 'qcow2')
    .option('-o, --options <list>', 'cluster_size=N,refcount_bits=N,compat=0.10|1.1,lazy_refcounts=on|off,compression_type=zlib|zstd,extended_l2=on|off', collect, [])
    .option('-b, --backing-file <file>', 'backing file name, stored as given (relative names are relative to the new image\'s directory)')
    .option('-F, --backing-format <fmt>', 'format of the backing file: qcow2 or raw (required with -b, as in qemu-img 7.2)')
    .option('-u, --unsafe', 'do not open the backing file (a size must then be given)')
    .option('-q, --quiet', 'do not print the Formatting line')
    .action(async (file: string, sizeText: string | undefined, opts: CreateFlags, cmd: Command) => {
      checkedFormat('create', opts.format);
      const options = parseImageOptions(opts.options);
      let backing: { file: string; format: BackingFormat } | undefined;
      if (opts.backingFile !== undefined) {
        if (opts.backingFormat === undefined) throw new CliError(`${file}: Backing file specified without backing format`);
        backing = { file: opts.backingFile, format: parseBackingFormat(opts.backingFormat) };
      } else if (opts.backingFormat !== undefined) {
        throw usage('-F needs a backing file (-b)');
      }
      const unsafe = opts.unsafe === true;
      let requested: number;
      if (sizeText !== undefined) requested = parseSize(sizeText, 'image size');
      else if (backing !== undefined && !unsafe) requested = await backingSize(file, backing.file, backing.format);
      else if (backing === undefined) throw usage("missing required argument 'size'");
      else throw new CliError(`${file}: Image creation needs a size parameter`);
      if (backing !== undefined && !unsafe && sizeText !== undefined) await backingSize(file, backing.file, backing.format);
      const size = roundUpToSector(requested);
      if (opts.quiet !== true) outputOf(cmd).out(formattingLine(file, requested, opts.options, backing));
      let image: Qcow2Image;
      try {
        const backingOptions = backing === undefined ? {} : { backingFile: backing.file, backingFormat: backing.format };
        image = await Qcow2Image.createFile(file, { ...options, ...backingOptions, size }, unsafe ? { backing: false } : {});
      } catch (error) {
        if (error instanceof Qcow2Error) throw new CliError(`could not create '${file}': ${error.message}`);
        throw error;
      }
      await image.close();
    });
}
