import type { BlockFile } from './block-file.js';
import { Qcow2Error } from '../errors.js';

/** A growable in-memory file (capacity doubles, so appends stay amortised O(1)). */
export class MemoryFile implements BlockFile {
  private buffer: Uint8Array;
  private size: number;
  private closed = false;

  constructor(initial?: Uint8Array) {
    this.buffer = initial ? initial.slice() : new Uint8Array(0);
    this.size = this.buffer.length;
  }

  /** A copy of the current contents. */
  bytes(): Uint8Array {
    return this.buffer.slice(0, this.size);
  }

  async pread(offset: number, length: number): Promise<Uint8Array> {
    this.checkOpen();
    checkRange(offset, length);
    const out = new Uint8Array(length);
    if (offset < this.size) out.set(this.buffer.subarray(offset, Math.min(this.size, offset + length)));
    return out;
  }

  async preadInto(offset: number, target: Uint8Array): Promise<void> {
    this.checkOpen();
    checkRange(offset, target.length);
    const available = Math.max(0, Math.min(this.size - offset, target.length));
    target.set(this.buffer.subarray(offset, offset + available));
    target.fill(0, available);
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkRange(offset, data.length);
    const end = offset + data.length;
    this.reserve(end);
    this.buffer.set(data, offset);
    if (end > this.size) this.size = end;
  }

  async flush(): Promise<void> {
    this.checkOpen();
  }

  async truncate(length: number): Promise<void> {
    this.checkOpen();
    checkRange(length, 0);
    this.reserve(length);
    if (length < this.size) this.buffer.fill(0, length, this.size);
    this.size = length;
  }

  async length(): Promise<number> {
    this.checkOpen();
    return this.size;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private reserve(end: number): void {
    if (end <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(end, this.buffer.length * 2, 4096));
    grown.set(this.buffer.subarray(0, this.size));
    this.buffer = grown;
  }

  private checkOpen(): void {
    if (this.closed) throw new Qcow2Error('io', 'memory file is closed');
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new Qcow2Error('io', `bad file range: offset ${offset} length ${length}`);
  }
}
