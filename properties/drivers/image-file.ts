// Drivers whose image is one file on disk (QEMU's, and the handoff's): its
// bytes are current only after the holder settles it (flush, or close and
// reopen with lazy refcounts), so both reads of the whole file go through it.
import { copyFile, readFile, stat } from 'node:fs/promises';

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
