// Drivers whose image is one file on disk (QEMU's, and the handoff's): its
// bytes are current only after the holder settles it (flush, or close and
// reopen with lazy refcounts), so both reads of the whole file go through it.
import { copyFile, open, readFile, stat } from 'node:fs/promises';

export abstract class ImageFileDriver {
  protected abstract readonly path: string;
  /** Bring the file on disk up to date with everything applied so far. */
  protected abstract settle(): Promise<void>;

  async imageBytes(): Promise<Uint8Array> {
    await this.settle();
    return new Uint8Array(await readFile(this.path));
  }

  /** The file as the holder left it so far, not settled. */
  async fileLength(): Promise<number> {
    return (await stat(this.path)).size;
  }

  async writeTo(path: string): Promise<void> {
    await this.settle();
    await copyFile(this.path, path);
  }
}

/** qcow2 header fields (docs/interop/qcow2.txt): `magic` "QFI\xfb" at byte 0, `size` (u64, big-endian) at byte 24. */
const qcow2Magic = 0x514649fb;
const virtualSizeFieldOffset = 24;
const headerPrefixBytes = 32;

/**
 * The virtual size in the header of a closed qcow2 image at `path`: what
 * `qemu-img info` reports, without starting a process. Throws when the file
 * has no qcow2 header or the size is past 2^53.
 */
export async function headerVirtualSize(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(headerPrefixBytes);
    const { bytesRead } = await handle.read(header, 0, headerPrefixBytes, 0);
    if (bytesRead < headerPrefixBytes || header.readUInt32BE(0) !== qcow2Magic) {
      throw new Error(`${path}: no qcow2 header (${bytesRead} bytes, magic 0x${header.readUInt32BE(0).toString(16)})`);
    }
    const size = header.readBigUInt64BE(virtualSizeFieldOffset);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${path}: header size ${size} at byte ${virtualSizeFieldOffset} is past 2^53`);
    return Number(size);
  } finally {
    await handle.close();
  }
}
