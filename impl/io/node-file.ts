import { open, type FileHandle } from 'node:fs/promises';
import { allocUninitialized, type BlockFile } from './block-file.js';
import { Qcow2Error } from '../errors.js';

/** A BlockFile on a real file; every node error becomes a Qcow2Error with code 'io'. */
export class NodeFile implements BlockFile {
  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
  ) {}

  static async open(path: string, opts: { readOnly: boolean; create?: boolean }): Promise<NodeFile> {
    const flags = opts.readOnly ? 'r' : opts.create ? 'w+' : 'r+';
    const handle = await io(`open ${path}`, () => open(path, flags));
    return new NodeFile(handle, path);
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
}

async function io<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (cause) {
    throw new Qcow2Error('io', `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
