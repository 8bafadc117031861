import { exitCodes } from './exit-codes.js';
import { CliError } from './fatal.js';

// Sizes on the command line are read the way QEMU 7.2 reads them
// (util/cutils.c do_strtosz), so a qemu-io / qemu-img command line means the
// same thing here: decimal (a leading 0 is not octal) or 0x hex, an optional
// fraction when a suffix follows ("1.5k" = 1536, rounded half up), and one
// suffix b/B k/K m/M g/G t/T p/P e/E for 2^0, 2^10 … 2^60.
// QEMU 7.2 still accepts a suffix after a hex number with a deprecation
// warning and QEMU 8 refuses it; we refuse it, so no script depends on it.

const suffixShift: Readonly<Record<string, bigint>> = {
  b: 0n, k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n,
};

const sizePattern = /^\s*(?:0[xX]([0-9a-fA-F]+)|([0-9]+)(?:\.([0-9]*))?([a-zA-Z]?))$/;

/**
 * Parses SIZE as qemu_strtosz does. `what` names the argument in the error
 * ("offset", "image size"); every failure is a usage error naming the text.
 * Values past 2^53 - 1 are refused, never rounded.
 */
export function parseSize(text: string, what: string): number {
  const match = sizePattern.exec(text);
  if (match === null) {
    throw usage(`invalid ${what} '${text}': expected a number with an optional suffix k, M, G, T, P or E`);
  }
  const [, hex, integral, fraction, suffix] = match;
  let bytes: bigint;
  if (hex !== undefined) {
    bytes = BigInt(`0x${hex}`);
  } else {
    const shift = suffix === undefined || suffix === '' ? undefined : suffixShift[suffix.toLowerCase()];
    if (suffix !== undefined && suffix !== '' && shift === undefined) {
      throw usage(`invalid ${what} '${text}': unknown suffix '${suffix}' (use k, M, G, T, P or E)`);
    }
    const multiplier = 1n << (shift ?? 0n);
    const digits = fraction ?? '';
    if (/[1-9]/.test(digits) && multiplier === 1n) {
      throw usage(`invalid ${what} '${text}': a fraction needs a suffix such as k or M`);
    }
    const scale = 10n ** BigInt(digits.length);
    const scaled = BigInt(integral ?? '0') * scale + BigInt(digits === '' ? '0' : digits);
    bytes = (scaled * multiplier + scale / 2n) / scale;
  }
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw usage(`invalid ${what} '${text}': ${bytes} is larger than ${Number.MAX_SAFE_INTEGER}`);
  }
  return Number(bytes);
}

function usage(message: string): CliError {
  return new CliError(message, exitCodes.usage);
}

const binaryPrefixes = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;

/**
 * qemu-img's human size (util/cutils.c size_to_str): "0 B", "1.5 KiB",
 * "100 MiB"; the unit switches up once the integer part reaches 1000.
 */
export function formatSize(bytes: number): string {
  // frexp(bytes / (1000/1024)) exponent e = floor(log2(x)) + 1 for x > 0.
  const scaled = bytes / (1000 / 1024);
  let exponent = 0;
  while (scaled >= 2 ** exponent) exponent++;
  const index = Math.min(Math.max(Math.trunc((exponent - 1) / 10), 0), binaryPrefixes.length - 1);
  const value = bytes / 2 ** (index * 10);
  return `${formatG3(value)} ${binaryPrefixes[index]}B`;
}

/** C's printf("%0.3g", value) for value >= 0. */
export function formatG3(value: number): string {
  if (value === 0) return '0';
  const text = value.toPrecision(3);
  const [mantissa = '', exponent] = text.split('e');
  const trimmed = mantissa.includes('.') ? mantissa.replace(/0+$/, '').replace(/\.$/, '') : mantissa;
  if (exponent === undefined) return trimmed;
  const power = Number(exponent);
  return `${trimmed}e${power < 0 ? '-' : '+'}${String(Math.abs(power)).padStart(2, '0')}`;
}
