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

describe('PromptFramer on a large stream', () => {
  // A `read -v` of 2 MiB: 131072 hexdump lines (about 10 MB), in 64 KiB chunks like a pipe delivers.
  const line = (i: number) => `${(i * 16).toString(16).padStart(8, '0')}:  ${'ab '.repeat(16)} ................\n`;
  const dumpLines = 131072;
  const chunkChars = 65536;

  function stream(): string[] {
    const text = `qemu-io> ${Array.from({ length: dumpLines }, (_, i) => line(i)).join('')}read 2097152/2097152 bytes at offset 0\nqemu-io> `;
    const chunks: string[] = [];
    for (let at = 0; at < text.length; at += chunkChars) chunks.push(text.slice(at, at + chunkChars));
    return chunks;
  }

  it('examines each character a bounded number of times, not once per chunk', () => {
    const chunks = stream();
    const out: string[] = [];
    const framer = new PromptFramer((frame) => out.push(frame));
    for (const chunk of chunks) framer.push(chunk);
    const inputChars = chunks.reduce((n, c) => n + c.length, 0);
    expect(out).toHaveLength(2);
    expect(out[1]?.length).toBe(inputChars - 2 * 'qemu-io> '.length);
    expect(out[1]?.startsWith(line(0))).toBe(true);
    expect(out[1]?.endsWith('read 2097152/2097152 bytes at offset 0\n')).toBe(true);
    // Each push and each frame rescans at most the 9 carried-over characters;
    // the quadratic framer searched the whole pending response on every push
    // (about 160 chunks x 5 MB on average here).
    expect(framer.charsScanned).toBeLessThanOrEqual(inputChars + 10 * (chunks.length + out.length));
    expect(framer.charsScanned).toBeGreaterThanOrEqual(inputChars);
  });

  it('finds a prompt split at every possible point between two chunks', () => {
    const text = 'wrote 1/1\nqemu-io> read 0/0\nqemu-io> ';
    for (let cut = 0; cut <= text.length; cut++) {
      expect(frames([`qemu-io> ${text.slice(0, cut)}`, text.slice(cut)])).toEqual(['', 'wrote 1/1\n', 'read 0/0\n']);
    }
  });

  it('keeps what follows the last prompt pending, one character at a time', () => {
    const out: string[] = [];
    const framer = new PromptFramer((frame) => out.push(frame));
    for (const ch of 'qemu-io> abc\nqemu-io> qemu-io: can\'t open') framer.push(ch);
    expect(out).toEqual(['', 'abc\n']);
    expect(framer.pending).toBe("qemu-io: can't open");
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
