// A BlockFile over a MemoryFile that records every write and read and counts
// barriers, for tests that pin what an operation costs in I/O.
import type { BlockFile, MemoryFile } from '../../impl/index.js';

export class IoLog implements BlockFile {
  writes: { offset: number; length: number }[] = [];
  reads: { offset: number; length: number }[] = [];
  barriers = 0;
  constructor(private readonly inner: MemoryFile) {}
  reset(): void {
    this.writes = [];
    this.reads = [];
    this.barriers = 0;
  }
  pread(offset: number, length: number) { this.reads.push({ offset, length }); return this.inner.pread(offset, length); }
  async pwrite(offset: number, data: Uint8Array) { this.writes.push({ offset, length: data.length }); await this.inner.pwrite(offset, data); }
  async flush() { this.barriers++; await this.inner.flush(); }
  truncate(length: number) { return this.inner.truncate(length); }
  length() { return this.inner.length(); }
  async close() {}
}
