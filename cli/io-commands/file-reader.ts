// The model's ByteReader over an open file, for the commands that hand an image
// to the model's decoder (check, map --output=html) without the engine.
import { fstatSync, readSync } from 'node:fs';
import type { ByteReader } from '../../model/index.js';

/**
 * Reads the file at `fd` on demand, so memory does not grow with the file;
 * bytes past its end read as zeros, as QEMU's block layer gives them.
 */
export function fileReader(fd: number): ByteReader {
  const size = fstatSync(fd).size;
  return {
    size,
    read(offset, length) {
      const out = new Uint8Array(length);
      if (offset < size) readSync(fd, out, 0, Math.min(length, size - offset), offset);
      return out;
    },
  };
}
