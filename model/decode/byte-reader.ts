// All image bytes reach the decoder through this interface, so it runs on a
// file, a buffer or a fault-injected copy alike.
export interface ByteReader {
  readonly size: number;
  /** Reads past the end return zeros (as QEMU's block layer does). */
  read(offset: number, length: number): Uint8Array;
}

export function bufferReader(bytes: Uint8Array): ByteReader {
  return {
    size: bytes.length,
    read(offset, length) {
      const out = new Uint8Array(length);
      if (offset < bytes.length) out.set(bytes.subarray(offset, Math.min(bytes.length, offset + length)));
      return out;
    },
  };
}

/** A read at a 64-bit offset: zeros wholly past the end of the file (offsets past 2^53 included). */
export function readAt(reader: ByteReader, offset: bigint, length: number): Uint8Array {
  return offset >= BigInt(reader.size) ? new Uint8Array(length) : reader.read(Number(offset), length);
}

/** Big-endian field access on a buffer read from the image. */
export function u16(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(at);
}
export function u32(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(at);
}
export function u64(b: Uint8Array, at: number): bigint {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(at);
}

/** Table of `count` big-endian u64 entries (L1, L2, reftable). */
export function u64Table(b: Uint8Array, count: number): bigint[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Array<bigint>(count);
  for (let i = 0; i < count; i++) out[i] = view.getBigUint64(i * 8);
  return out;
}
