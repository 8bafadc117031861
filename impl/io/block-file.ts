// Every byte of engine I/O goes through a BlockFile, so the same engine runs on a
// real file, on memory, or on a fault-injecting or recording wrapper in tests.

export interface BlockFile {
  /** Bytes past EOF read as zeros; always returns exactly `length` bytes. */
  pread(offset: number, length: number): Promise<Uint8Array>;
  pwrite(offset: number, data: Uint8Array): Promise<void>;
  /** Barrier: everything written before reaches stable storage before anything after. */
  flush(): Promise<void>;
  truncate(length: number): Promise<void>;
  length(): Promise<number>;
  close(): Promise<void>;
}
