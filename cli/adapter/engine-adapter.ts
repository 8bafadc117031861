// `qcow2-verify adapter`: our engine (impl/) behind the adapter protocol, the
// protocol's reference implementation. It follows docs/protocol.md only: one
// JSON request per stdin line, handled strictly in order, one answer line on
// stdout each, logs on stderr. A refusal of the engine whose code is one of the
// model's error kinds is answered with that kind; an AssertionError (the
// engine's own invariant) with `assertion`; anything else with `failed`.
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { AssertionError, Qcow2Error, Qcow2Image, type CreateOptions } from '../../impl/index.js';

/** The protocol version this adapter speaks. */
const protocolVersion = 1;

/** The model's error kinds: refusals the engine reports with these codes are answered as such. */
const refusalCodes: ReadonlySet<string> = new Set(['out-of-range', 'invalid-argument', 'unknown-snapshot', 'unsupported', 'refcount-overflow', 'compressed-overwrite']);

type Json = Record<string, unknown>;

/** A request the adapter cannot act on (a missing field, no open image): answered `failed`, the session goes on. */
class RequestError extends Error {
  override readonly name = 'RequestError';
}

function num(r: Json, key: string): number {
  const v = r[key];
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new RequestError(`field ${key} is ${JSON.stringify(v)}, expected a non-negative integer`);
  return v as number;
}

function str(r: Json, key: string): string {
  const v = r[key];
  if (typeof v !== 'string') throw new RequestError(`field ${key} is ${JSON.stringify(v)}, expected a string`);
  return v;
}

/** The guest bytes of a write: inline base64 (`data`) or a file (`dataFile`). */
async function dataOf(r: Json): Promise<Uint8Array> {
  const bytes = typeof r.dataFile === 'string' ? new Uint8Array(await readFile(r.dataFile)) : new Uint8Array(Buffer.from(str(r, 'data'), 'base64'));
  if (bytes.length !== num(r, 'length')) throw new RequestError(`the data holds ${bytes.length} bytes, field length says ${num(r, 'length')}`);
  return bytes;
}

/** The backing file's format of a create or rebase request. */
function backingFormat(r: Json): 'qcow2' | 'raw' {
  const v = r.backingFormat;
  if (v !== 'qcow2' && v !== 'raw') throw new RequestError(`field backingFormat is ${JSON.stringify(v)}, expected qcow2 or raw`);
  return v;
}

function createOptions(o: Json): CreateOptions {
  return {
    size: num(o, 'virtualSize'),
    clusterSize: 2 ** num(o, 'clusterBits'),
    refcountBits: num(o, 'refcountBits'),
    compat: o.version === 3 ? '1.1' : '0.10',
    lazyRefcounts: o.lazyRefcounts === true,
    extendedL2: o.extendedL2 === true,
    compressionType: o.compressionType === 'zstd' ? 'zstd' : 'zlib',
  };
}

export class EngineAdapter {
  private image: Qcow2Image | undefined;
  private path: string | undefined;

  constructor(private readonly version: string) {}

  private open(): Qcow2Image {
    if (this.image === undefined) throw new RequestError('no image is open');
    return this.image;
  }

  /** The answer body for one request (without id and ok); throws for a refusal or a failure. */
  async handle(r: Json): Promise<Json> {
    switch (r.op) {
      case 'hello':
        return {
          protocol: protocolVersion,
          name: 'qcow2-verify engine',
          version: this.version,
          mode: 'read-write',
          versions: [2, 3],
          clusterBitsMin: 9,
          clusterBitsMax: 21,
          refcountBits: [1, 2, 4, 8, 16, 32, 64],
          ops: ['write', 'writeCompressed', 'writeZeroes', 'discard', 'resize', 'snapshotCreate', 'snapshotRevert', 'snapshotDelete', 'flush', 'reopen', 'createOverlay', 'rebase', 'commit'],
          features: ['compressed', 'backing', 'extended-l2', 'zstd'],
        };
      case 'create': {
        await this.closeImage();
        this.path = str(r, 'path');
        // an overlay: the backing name relative to the image's directory, as createFile resolves it
        const backing = r.backingFile === undefined ? {} : { backingFile: str(r, 'backingFile'), backingFormat: backingFormat(r) };
        this.image = await Qcow2Image.createFile(this.path, { ...createOptions((r.options ?? {}) as Json), ...backing });
        return {};
      }
      case 'open':
        await this.closeImage();
        this.path = str(r, 'path');
        this.image = await Qcow2Image.openFile(this.path, { readOnly: r.readOnly === true });
        return {};
      case 'read': {
        const bytes = await this.open().read(num(r, 'offset'), num(r, 'length'));
        if (typeof r.toFile === 'string') {
          await writeFile(r.toFile, bytes);
          return {};
        }
        return { data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
      }
      case 'close':
        await this.closeImage();
        return {};
      case 'reopen': {
        const path = this.path;
        if (path === undefined) throw new RequestError('no image is open');
        await this.closeImage();
        this.image = await Qcow2Image.openFile(path);
        return {};
      }
      case 'write':
        await this.open().write(num(r, 'offset'), await dataOf(r));
        return {};
      case 'writeCompressed':
        await this.open().writeCompressed(num(r, 'offset'), await dataOf(r));
        return {};
      case 'writeZeroes':
        await this.open().writeZeroes(num(r, 'offset'), num(r, 'length'), { unmap: r.unmap === true });
        return {};
      case 'discard':
        await this.open().discard(num(r, 'offset'), num(r, 'length'));
        return {};
      case 'resize':
        await this.open().resize(num(r, 'size'));
        return {};
      case 'snapshotCreate':
        await this.open().snapshots.create(str(r, 'name'));
        return {};
      case 'snapshotRevert':
        await this.open().snapshots.revert(str(r, 'name'));
        return {};
      case 'snapshotDelete':
        await this.open().snapshots.delete(str(r, 'name'));
        return {};
      case 'flush':
        await this.open().flush();
        return {};
      case 'rebase': {
        const target = r.backingFile === null ? { backingFile: null } : { backingFile: str(r, 'backingFile'), backingFormat: backingFormat(r) };
        await this.open().rebase({ ...target, unsafe: r.unsafe === true });
        return {};
      }
      case 'commit':
        await this.open().commit();
        return {};
      case 'quit':
        await this.closeImage();
        return {};
      default:
        throw new RequestError(`unknown request ${JSON.stringify(r.op)}`);
    }
  }

  async closeImage(): Promise<void> {
    const image = this.image;
    this.image = undefined;
    await image?.close();
  }

  /** The answer line for one request line. */
  async answer(line: string): Promise<{ line: string; quit: boolean }> {
    let request: Json;
    try {
      request = JSON.parse(line) as Json;
    } catch {
      return { line: JSON.stringify({ id: -1, ok: false, error: 'failed', message: 'the request is not JSON' }), quit: false };
    }
    const id = request.id;
    try {
      const body = await this.handle(request);
      return { line: JSON.stringify({ id, ok: true, ...body }), quit: request.op === 'quit' };
    } catch (error) {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const code = error instanceof Qcow2Error && refusalCodes.has(error.code) ? error.code : error instanceof AssertionError ? 'assertion' : 'failed';
      return { line: JSON.stringify({ id, ok: false, error: code, message }), quit: false };
    }
  }
}

/** Serves the protocol on `input` / `output` until `quit` or the end of the input. */
export async function serveEngineAdapter(version: string, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
  const adapter = new EngineAdapter(version);
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue;
      const { line: answer, quit } = await adapter.answer(line);
      output.write(`${answer}\n`);
      if (quit) break;
    }
  } finally {
    lines.close();
    await adapter.closeImage();
  }
}
