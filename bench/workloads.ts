import { open } from 'node:fs/promises';
import { formatIoCommand } from '../cli/io-commands/command.js';

export const MiB = 1 << 20;
/** Source data is written in pieces of this size, so making it takes bounded memory too. */
const fillChunkBytes = 4 * MiB;
export const randomWriteBytes = 4096;
/** The random-write image: 1 GiB, as issue 2 specifies. */
export const randomWriteImageBytes = 1 << 30;

/** xorshift32: the benchmark's only randomness, fixed by its seed. */
export function xorshift32(seed: number): () => number {
  let x = seed | 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Writes `bytes` of non-zero pseudo-random data (incompressible, no zero block) to `path`. */
export async function writeRandomRaw(path: string, bytes: number, seed: number): Promise<void> {
  const next = xorshift32(seed);
  const file = await open(path, 'w');
  try {
    for (let at = 0; at < bytes; at += fillChunkBytes) {
      const words = new Uint32Array(Math.min(fillChunkBytes, bytes - at) / 4);
      for (let i = 0; i < words.length; i++) words[i] = next() | 0x01010101; // no zero byte anywhere
      await file.write(new Uint8Array(words.buffer), 0, words.byteLength, at);
    }
  } finally {
    await file.close();
  }
}

/**
 * `count` qemu-io lines `write -P 0xNN OFF 4096` at 4 KiB-aligned offsets
 * drawn from the seed across the image; the same text drives both sides.
 */
export function randomWriteScript(count: number, imageBytes: number, seed: number): string {
  const next = xorshift32(seed);
  const slots = Math.floor(imageBytes / randomWriteBytes);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const offset = (next() % slots) * randomWriteBytes;
    lines.push(formatIoCommand({ kind: 'write', offset, length: randomWriteBytes, pattern: (i % 255) + 1, quiet: true }));
  }
  return `${lines.join('\n')}\n`;
}
