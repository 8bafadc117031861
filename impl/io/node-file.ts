import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { allocUninitialized, type BlockFile } from './block-file.js';
import { Qcow2Error } from '../errors.js';
import { imageLockPerms, lockImageFile } from './file-lock.js';
import { extentAt, punchHole } from './file-extents.js';

/** How NodeFile.open opens a file; it locks it as QEMU's qcow2 driver locks its file for the mode. */
export interface NodeFileOptions {
  readonly readOnly: boolean;
  /** Create the file if missing and empty it, after the locks are taken. */
  readonly create?: boolean;
  /** qemu-img's -U: share every permission (read-only opens only). */
  readonly forceShare?: boolean;
}

/**
 * A BlockFile on a real file; every node error becomes a Qcow2Error with code
 * 'io'. While open it holds QEMU's permission locks (impl/io/file-lock.ts),
 * released by close() or, should the process die, by the kernel.
 */
export class NodeFile implements BlockFile {
  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
  ) {}

  /**
   * Opens `path` and takes its locks before anything is read or truncated, as
   * QEMU's raw_open_common and raw_co_create do. Throws Qcow2LockError when
   * another process (or another open in this one) holds the file in a
   * conflicting way, Qcow2Error 'invalid-argument' for force-share with write.
   */
  static async open(path: string, opts: NodeFileOptions): Promise<NodeFile> {
    const lock = imageLockPerms({ readOnly: opts.readOnly, forceShare: opts.forceShare ?? false });
    const flags = opts.readOnly ? constants.O_RDONLY : constants.O_RDWR | (opts.create ? constants.O_CREAT : 0);
    const handle = await open(path, flags, 0o666).catch((cause: NodeJS.ErrnoException) => {
      // a directory opened for writing fails here (EISDIR), for reading below: one message for both
      if (cause.code === 'EISDIR') throw new Qcow2Error('io', notRegularFile, { cause });
      throw new Qcow2Error('io', `Could not open '${path}': ${systemErrorText(cause)}`, { cause });
    });
    const file = new NodeFile(handle, path);
    try {
      // open(2) succeeds on a directory and only a read fails (EISDIR); QEMU's
      // 'file' driver refuses it at open ("requires … to be a regular file")
      const stat = await io(`stat ${path}`, () => handle.stat());
      if (!stat.isFile() && !stat.isBlockDevice()) throw new Qcow2Error('io', notRegularFile);
      lockImageFile(handle.fd, path, lock);
      if (opts.create === true) await file.truncate(0);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return file;
  }

  async pread(offset: number, length: number): Promise<Uint8Array> {
    const out = allocUninitialized(length);
    await this.preadInto(offset, out);
    return out;
  }

  async preadInto(offset: number, target: Uint8Array): Promise<void> {
    const length = target.length;
    let done = 0;
    while (done < length) {
      const { bytesRead } = await io(`read ${this.path}`, () =>
        this.handle.read(target, done, length - done, offset + done),
      );
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    target.fill(0, done); // past EOF reads as zeros
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await io(`write ${this.path}`, () =>
        this.handle.write(data, done, data.length - done, offset + done),
      );
      done += bytesWritten;
    }
  }

  async flush(): Promise<void> {
    await io(`fdatasync ${this.path}`, () => this.handle.datasync());
  }

  async truncate(length: number): Promise<void> {
    await io(`truncate ${this.path}`, () => this.handle.truncate(length));
  }

  async length(): Promise<number> {
    const stat = await io(`stat ${this.path}`, () => this.handle.stat());
    return stat.size;
  }

  async close(): Promise<void> {
    await io(`close ${this.path}`, () => this.handle.close());
  }

  /**
   * Zero [offset, offset + length) as QEMU's write zeroes with unmap does on a
   * file: punch a hole (the size stays), or write zeros where that fails.
   */
  async writeZeroesUnmap(offset: number, length: number): Promise<void> {
    if (length > 0 && !punchHole(this.handle.fd, offset, length)) await this.pwrite(offset, new Uint8Array(length));
  }

  /** The data extent or hole that starts at `offset`, inside a file of `fileLength` bytes (file-extents.ts). */
  extentAt(offset: number, fileLength: number): { data: boolean; end: number } {
    return extentAt(this.handle.fd, offset, fileLength, this.path);
  }
}

/** A file-system error in the words QEMU prints (strerror), without Node's call and path. */
export function systemErrorText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'ENOENT') return 'No such file or directory';
  if (code === 'EACCES') return 'Permission denied';
  if (code === 'ENOTDIR') return 'Not a directory';
  if (code === 'ELOOP') return 'Too many levels of symbolic links';
  return error instanceof Error ? error.message : String(error);
}

/** What QEMU's 'file' driver refuses at open: a directory, a FIFO, a socket. */
const notRegularFile = 'not a regular file';

async function io<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (cause) {
    throw new Qcow2Error('io', `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
