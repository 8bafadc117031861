import { describe, expect, it } from 'vitest';
import { Qcow2Error } from '../../../impl/errors.js';
import { parseIoCommand } from '../../../cli/io-commands/parse.js';
import { ioChunkBytes, runIoCommands, type IoImage } from '../../../cli/io-commands/run.js';

/** A flat in-memory disk that records every call, refusing out-of-range requests as the engine does. */
class FakeImage implements IoImage {
  readonly calls: string[] = [];
  bytes: Uint8Array;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  get virtualSize(): number {
    return this.bytes.length;
  }
  private check(offset: number, length: number): void {
    if (offset + length > this.bytes.length) throw new Qcow2Error('out-of-range', 'Input/output error');
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.calls.push(`read ${offset} ${length}`);
    this.check(offset, length);
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.calls.push(`write ${offset} ${data.length}`);
    this.check(offset, data.length);
    this.bytes.set(data, offset);
  }
  async writeCompressed(offset: number, data: Uint8Array): Promise<void> {
    this.calls.push(`writeCompressed ${offset} ${data.length}`);
    this.check(offset, data.length);
    this.bytes.set(data, offset);
  }
  async writeZeroes(offset: number, length: number, options?: { unmap?: boolean }): Promise<void> {
    this.calls.push(`writeZeroes ${offset} ${length} ${options?.unmap === true}`);
    this.check(offset, length);
    this.bytes.fill(0, offset, offset + length);
  }
  async discard(offset: number, length: number): Promise<void> {
    this.calls.push(`discard ${offset} ${length}`);
    this.check(offset, length);
  }
  async flush(): Promise<void> {
    this.calls.push('flush');
  }
  async resize(size: number): Promise<void> {
    this.calls.push(`resize ${size}`);
    if (size % 512 !== 0) throw new Qcow2Error('invalid-argument', 'The new size must be a multiple of 512');
    const next = new Uint8Array(size);
    next.set(this.bytes.subarray(0, Math.min(size, this.bytes.length)));
    this.bytes = next;
  }
}

async function run(image: IoImage, lines: string[]) {
  const out: string[] = [];
  const summary = await runIoCommands(image, lines.map(parseIoCommand), (line) => out.push(line));
  return { out, summary };
}

describe('runIoCommands', () => {
  it("prints qemu-io's result lines and runs commands in order", async () => {
    const image = new FakeImage(1 << 20);
    const { out, summary } = await run(image, [
      'write -P 0xab 0 4k', 'write -z -u 64k 64k', 'read -P 0xab 0 4k', 'discard 0 64k', 'truncate 2M', 'flush', 'write -q 0 1',
    ]);
    expect(out).toEqual([
      'wrote 4096/4096 bytes at offset 0',
      'wrote 65536/65536 bytes at offset 65536',
      'read 4096/4096 bytes at offset 0',
      'discard 65536/65536 bytes at offset 0',
    ]);
    expect(summary).toEqual({ executed: 7, failed: 0 });
    expect(image.calls).toEqual([
      'write 0 4096', 'writeZeroes 65536 65536 true', 'read 0 4096', 'discard 0 65536', 'resize 2097152', 'flush', 'write 0 1',
    ]);
    expect(image.bytes[0]).toBe(0xcd); // qemu-io's default pattern
  });

  it('names the first differing byte when read -P finds other data', async () => {
    const image = new FakeImage(1 << 20);
    const { out, summary } = await run(image, ['write -P 0xab 0 8k', 'write -P 0xcd 5000 1', 'read -P 0xab 0 8k', 'read -q -P 0xab 0 8k']);
    expect(out[2]).toBe('Pattern verification failed at offset 5000: expected 0xab, found 0xcd (read of 8192 bytes at offset 0)');
    // then the read's own line, as qemu-io prints it after a failed verification; -q prints neither
    expect(out[3]).toBe('read 8192/8192 bytes at offset 0');
    expect(out[4]).toBe('Pattern verification failed at offset 5000: expected 0xab, found 0xcd (read of 8192 bytes at offset 0)');
    expect(out).toHaveLength(5);
    expect(summary.failed).toBe(2);
  });

  it('goes on after a refused command, like qemu-io, and counts it', async () => {
    const image = new FakeImage(1 << 20);
    const { out, summary } = await run(image, ['write 1M 512', 'truncate 1000', 'write -P 1 0 512']);
    expect(out[0]).toMatch(/^write failed: Input\/output error \(out-of-range\)$/);
    expect(out[1]).toMatch(/^truncate failed: .*multiple of 512 \(invalid-argument\)$/);
    expect(out[2]).toBe('wrote 512/512 bytes at offset 0');
    expect(summary).toEqual({ executed: 3, failed: 2 });
  });

  it('stops at an error that is not a refusal', async () => {
    const image = new FakeImage(1 << 20);
    image.flush = async () => {
      throw new Qcow2Error('io', 'fdatasync failed');
    };
    await expect(run(image, ['flush', 'write 0 1'])).rejects.toThrow(/fdatasync failed/);
    expect(image.calls).toEqual([]);
  });

  it('moves long requests in aligned pieces and refuses a long one past the end before any piece', async () => {
    const size = 3 * ioChunkBytes;
    const image = new FakeImage(size);
    await run(image, [`write -P 7 ${ioChunkBytes - 512} ${ioChunkBytes + 1024}`]);
    expect(image.calls).toEqual([`write ${ioChunkBytes - 512} 512`, `write ${ioChunkBytes} ${ioChunkBytes}`, `write ${2 * ioChunkBytes} 512`]);
    image.calls.length = 0;
    const { out } = await run(image, [`write -P 9 ${ioChunkBytes} ${2 * ioChunkBytes + 512}`, `read ${size} 0`, `read ${size + 512} 0`]);
    expect(image.calls).toEqual([]);
    expect(out[0]).toMatch(/^write failed: .*past the virtual size/);
    expect(out[1]).toBe(`read 0/0 bytes at offset ${size}`);
    expect(out[2]).toMatch(/^read failed: /);
    expect(image.bytes[ioChunkBytes]).toBe(7);
  });
});
