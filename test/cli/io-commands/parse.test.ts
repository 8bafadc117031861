import { describe, expect, it } from 'vitest';
import { formatIoCommand, requestBytesMax } from '../../../cli/io-commands/command.js';
import { parseIoCommand } from '../../../cli/io-commands/parse.js';

describe('parseIoCommand', () => {
  it('reads qemu-io write, read, discard, truncate and flush lines', () => {
    expect(parseIoCommand('write -P 0xab 0 4k')).toEqual({ kind: 'write', offset: 0, length: 4096, pattern: 0xab, quiet: false });
    expect(parseIoCommand('write 1k 512')).toEqual({ kind: 'write', offset: 1024, length: 512, pattern: 0xcd, quiet: false });
    expect(parseIoCommand('write -c -P 7 0 64k')).toEqual({ kind: 'write', offset: 0, length: 65536, pattern: 7, compressed: true, quiet: false });
    expect(() => parseIoCommand('write -cz 0 64k')).toThrow(/-c and -z/);
    expect(parseIoCommand('  write   -P0x1   0x200 0x200 ')).toMatchObject({ pattern: 1, offset: 512, length: 512 });
    expect(parseIoCommand('write -z 64k 64k')).toEqual({ kind: 'writeZeroes', offset: 65536, length: 65536, unmap: false, quiet: false });
    expect(parseIoCommand('write -zu 0 1M')).toEqual({ kind: 'writeZeroes', offset: 0, length: 1 << 20, unmap: true, quiet: false });
    expect(parseIoCommand('write -z -u -q 0 1M')).toMatchObject({ kind: 'writeZeroes', unmap: true, quiet: true });
    expect(parseIoCommand('read -P 0 1M 512')).toEqual({ kind: 'read', offset: 1 << 20, length: 512, pattern: 0, quiet: false });
    expect(parseIoCommand('read 0 512')).toEqual({ kind: 'read', offset: 0, length: 512, pattern: undefined, quiet: false });
    expect(parseIoCommand('discard 0 1.5k')).toEqual({ kind: 'discard', offset: 0, length: 1536, quiet: false });
    expect(parseIoCommand('truncate 1.5M')).toEqual({ kind: 'truncate', size: 1572864 });
    expect(parseIoCommand('flush')).toEqual({ kind: 'flush' });
  });

  it('reads pattern bytes with strtol base 0, like qemu-io', () => {
    expect(parseIoCommand('write -P 010 0 1')).toMatchObject({ pattern: 8 });
    expect(parseIoCommand('write -P 255 0 1')).toMatchObject({ pattern: 255 });
    expect(parseIoCommand('write -P 0 0 1')).toMatchObject({ pattern: 0 });
  });

  it.each([
    ['bogus 0 1', /unknown command 'bogus'/],
    ['', /empty command/],
    ['write 0', /expected 2 arguments, got 1/],
    ['write 0 1 2', /expected 2 arguments, got 3/],
    ['flush now', /expected 0 arguments, got 1/],
    ['write -P 256 0 1', /256 is not a valid pattern byte/],
    ['write -P -1 0 1', /-1 is not a valid pattern byte/],
    ['write -P xyz 0 1', /xyz is not a valid pattern byte/],
    ['write -P 09 0 1', /09 is not a valid pattern byte/],
    ['write -P', /option -P needs an argument/],
    ['write -z -P 1 0 512', /only one of -z and -P/],
    ['write -u 0 512', /-u requires -z/],
    ['discard -P 1 0 512', /unsupported option -P/],
    ['write 0 abc', /invalid length 'abc'/],
    ['read 1e3 1', /invalid offset '1e3'/],
    ['read 0 2G', new RegExp(`length cannot exceed ${requestBytesMax}, given 2G`)],
  ])('%j is a usage error: %s', (line, message) => {
    expect(() => parseIoCommand(line)).toThrow(message);
  });

  it('round-trips through formatIoCommand', () => {
    for (const line of ['write -P 0xab 0x0 0x1000', 'write -z -u 0x10000 0x10000', 'write -z 0x0 0x200', 'read 0x0 0x200', 'read -P 0x0 0x0 0x200', 'discard 0x0 0x10000', 'truncate 0x100000', 'flush']) {
      expect(formatIoCommand(parseIoCommand(line))).toBe(line);
    }
  });
});
