import { describe, expect, it } from 'vitest';
import { QemuOutputError } from '../../../oracle/errors.js';
import { parseHexdump, PromptFramer } from '../../../oracle/qemu-io/framing.js';

function frames(chunks: string[]): string[] {
  const out: string[] = [];
  const framer = new PromptFramer((frame) => out.push(frame));
  for (const chunk of chunks) framer.push(chunk);
  return out;
}

describe('PromptFramer', () => {
  it('cuts at prompts that start a line, across chunk boundaries', () => {
    expect(frames(['qemu-io', '> ', 'wrote 1/1\nqem', 'u-io> qemu-io> x\nqemu-io> '])).toEqual(['', 'wrote 1/1\n', '', 'x\n']);
  });

  it('does not cut at a prompt inside a hexdump ASCII column', () => {
    const line = '00000000:  71 65 6d 75 2d 69 6f 3e 20 00 00 00 00 00 00 00  qemu-io> .......\n';
    expect(frames([`qemu-io> ${line}read 16/16 bytes at offset 0\nqemu-io> `])).toEqual([
      '',
      `${line}read 16/16 bytes at offset 0\n`,
    ]);
  });
});

describe('parseHexdump', () => {
  const dump = [
    '00000010:  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................',
    '00000020:  ff 20  ..',
    'read 18/18 bytes at offset 16',
    '18 bytes, 1 ops; 00.00 sec (1 KiB/sec and 1 ops/sec)',
  ].join('\n');

  it('returns the exact bytes', () => {
    expect([...parseHexdump(dump, 16, 18, 'read')]).toEqual([...Array.from({ length: 16 }, (_, i) => i), 0xff, 0x20]);
  });

  it('rejects a short dump, a wrong offset and a missing summary', () => {
    expect(() => parseHexdump(dump, 16, 19, 'read')).toThrow(QemuOutputError);
    expect(() => parseHexdump(dump, 0, 18, 'read')).toThrow(/out of order/);
    expect(() => parseHexdump(dump.replace('read 18/18', 'read 17/18'), 16, 18, 'read')).toThrow(QemuOutputError);
  });
});
