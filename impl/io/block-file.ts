// Every byte of engine I/O goes through a BlockFile, so the same engine runs on a
// real file, on memory, or on a fault-injecting or recording wrapper in tests.

export interface BlockFile {
  /** Bytes past EOF read as zeros; always returns exactly `length` bytes. */
  pread(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional fast path: read `target.length` bytes at `offset` straight into
   * `target` (bytes past EOF as zeros), sparing a buffer and a copy. Callers go
   * through preadInto() below, which falls back to pread for files without it.
   */
  preadInto?(offset: number, target: Uint8Array): Promise<void>;
  pwrite(offset: number, data: Uint8Array): Promise<void>;
  /** Barrier: everything written before reaches stable storage before anything after. */
  flush(): Promise<void>;
  truncate(length: number): Promise<void>;
  length(): Promise<number>;
  close(): Promise<void>;
}

/** Read into `target` through the file's preadInto when it has one, else pread and copy. */
export async function preadInto(file: BlockFile, offset: number, target: Uint8Array): Promise<void> {
  if (file.preadInto) return file.preadInto(offset, target);
  target.set(await file.pread(offset, target.length));
}

/**
 * A fresh Uint8Array of `length` bytes that is NOT zero-filled: the caller
 * overwrites (or zeroes) every byte. It owns its whole ArrayBuffer (never a
 * slice of Node's shared pool), so `.buffer` users see exactly these bytes.
 */
export function allocUninitialized(length: number): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
}
