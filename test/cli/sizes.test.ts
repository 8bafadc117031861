import { describe, expect, it } from 'vitest';
import { CliError } from '../../cli/fatal.js';
import { formatSize, parseSize } from '../../cli/sizes.js';

describe('parseSize (qemu_strtosz)', () => {
  // Each expectation was checked against qemu-io 7.2 (`read 0 SIZE` prints the length).
  it.each([
    ['0', 0],
    ['4096', 4096],
    ['010', 10],
    ['0x10', 16],
    ['0X1f', 31],
    ['1b', 1],
    ['1B', 1],
    ['4k', 4096],
    ['4K', 4096],
    ['1m', 1 << 20],
    ['2G', 2 * 2 ** 30],
    ['1T', 2 ** 40],
    ['1P', 2 ** 50],
    ['1.5k', 1536],
    ['1.1k', 1126],
    ['0.5k', 512],
    ['1.k', 1024],
    ['1.0009765625k', 1025],
    ['1.0', 1],
    [' 5', 5],
  ])('%s → %d', (text, bytes) => {
    expect(parseSize(text, 'length')).toBe(bytes);
  });

  it.each(['', 'abc', '1e3', '1KiB', '1.5', '0x1k', '0x1.8k', '-5', '1x', '4 k', '8E'])(
    'refuses %j with a usage error naming the text',
    (text) => {
      let caught: unknown;
      try {
        parseSize(text, 'length');
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(CliError);
      expect((caught as CliError).exitCode).toBe(2);
      expect((caught as CliError).message).toContain(`'${text}'`);
    },
  );

  it('refuses values past 2^53 instead of rounding them', () => {
    expect(parseSize('7P', 'size')).toBe(7 * 2 ** 50);
    expect(() => parseSize('8P', 'size')).toThrow(/larger than 9007199254740991/);
    expect(() => parseSize('9007199254740993', 'size')).toThrow(/9007199254740993 is larger/);
  });
});

describe('formatSize (size_to_str)', () => {
  // Outputs copied from qemu-img 7.2 info / snapshot -l.
  it.each([
    [0, '0 B'],
    [512, '512 B'],
    [1000, '0.977 KiB'],
    [1536, '1.5 KiB'],
    [196 * 1024, '196 KiB'],
    [479232, '468 KiB'],
    [1048576, '1 MiB'],
    [104857600, '100 MiB'],
    [1073741824, '1 GiB'],
    [1610612736, '1.5 GiB'],
    [2 ** 40, '1 TiB'],
  ])('%d → %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});
