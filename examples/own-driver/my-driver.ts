// A driver for "your" qcow2 implementation: the one thing a project writes to
// put its code under qcow2-verify's model and properties. Each method maps one
// call of the ImageDriver interface onto the implementation under test; here
// that implementation is qcow2-verify's own engine on a real file in a temp
// directory, so the example runs as it is. Replace the Qcow2Image calls with
// your library's (or with a child process, an FFI binding, …).
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Qcow2Error, Qcow2Image } from 'qcow2-verify/impl';
import { compressedWriteBytes, formatOp, writeBytes, type ImageOptions, type Op, type Outcome } from 'qcow2-verify/model';
import { implementationError, isOpErrorKind, okOutcome, refused, type ImageDriver } from 'qcow2-verify/properties';

class MyDriver implements ImageDriver {
  readonly name = 'my qcow2 driver (example)';

  constructor(
    private readonly dir: string,
    private readonly path: string,
    private image: Qcow2Image,
  ) {}

  async apply(op: Op): Promise<Outcome> {
    try {
      await this.run(op);
      return okOutcome;
    } catch (error) {
      // A refusal the model also makes (out of range, unknown snapshot, …) is an
      // outcome to compare; anything else is a failure of the implementation.
      if (error instanceof Qcow2Error && isOpErrorKind(error.code)) return refused(error.code, error.message);
      throw implementationError(this.name, formatOp(op), error);
    }
  }

  private async run(op: Op): Promise<void> {
    switch (op.kind) {
      case 'write':
        return this.image.write(op.offset, writeBytes(op));
      case 'writeCompressed':
        return this.image.writeCompressed(op.offset, compressedWriteBytes(op));
      case 'writeZeroes':
        return this.image.writeZeroes(op.offset, op.length, { unmap: op.unmap });
      case 'discard':
        return this.image.discard(op.offset, op.length);
      case 'resize':
        return this.image.resize(op.size);
      case 'snapshotCreate':
        return this.image.snapshots.create(op.name);
      case 'snapshotRevert':
        return this.image.snapshots.revert(op.name);
      case 'snapshotDelete':
        return this.image.snapshots.delete(op.name);
      case 'flush':
        return this.image.flush();
      case 'reopen':
        await this.image.close();
        this.image = await Qcow2Image.openFile(this.path);
        return;
      default:
        // an operation a newer qcow2-verify draws and this driver does not know yet
        throw new Error(`unsupported operation ${formatOp(op)}`);
    }
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.image.read(offset, length);
  }

  async imageBytes(): Promise<Uint8Array> {
    await this.image.flush();
    return new Uint8Array(await readFile(this.path));
  }

  async fileLength(): Promise<number> {
    return (await stat(this.path)).size;
  }

  async writeTo(path: string): Promise<void> {
    await this.image.flush();
    await copyFile(this.path, path);
  }

  async close(): Promise<void> {
    await this.image.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A DriverFactory: a fresh image with the options the property drew. */
export async function createMyDriver(options: ImageOptions): Promise<ImageDriver> {
  const dir = await mkdtemp(join(tmpdir(), 'my-driver-'));
  const path = join(dir, 'disk.qcow2');
  const image = await Qcow2Image.createFile(path, {
    size: options.virtualSize,
    clusterSize: 2 ** options.clusterBits,
    refcountBits: options.refcountBits,
    compat: options.version === 3 ? '1.1' : '0.10',
    lazyRefcounts: options.lazyRefcounts,
    compressionType: options.compressionType ?? 'zlib',
  });
  return new MyDriver(dir, path, image);
}
