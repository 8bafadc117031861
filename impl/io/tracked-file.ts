// The engine's handle on its image file: forwards every call and keeps an upper
// bound of the file's length, so the data path can tell "this fresh cluster lies
// past the end and already reads as zeros" without a stat per guest write (that
// was a thread-pool round trip per 4 KiB random write). Sound because while an
// image is open the engine is the only writer of its file (QEMU takes a lock for
// the same reason; every cached table relies on it too).
import { preadInto, type BlockFile } from './block-file.js';

export class TrackedFile implements BlockFile {
  /** Every byte at or past this offset reads as zeros (an upper bound of the length). */
  private zeroFrom: number;

  constructor(
    private readonly inner: BlockFile,
    lengthAtOpen: number,
  ) {
    this.zeroFrom = lengthAtOpen;
  }

  /** Offset from which the file certainly reads as zeros. */
  get zerosFrom(): number {
    return this.zeroFrom;
  }

  pread(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.pread(offset, length);
  }

  preadInto(offset: number, target: Uint8Array): Promise<void> {
    return preadInto(this.inner, offset, target);
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    // Raised before the write: a failed or torn write may still have extended the file.
    if (data.length > 0) this.zeroFrom = Math.max(this.zeroFrom, offset + data.length);
    await this.inner.pwrite(offset, data);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  async truncate(length: number): Promise<void> {
    this.zeroFrom = Math.max(this.zeroFrom, length); // unknown until it succeeds
    await this.inner.truncate(length);
    this.zeroFrom = length;
  }

  length(): Promise<number> {
    return this.inner.length();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
