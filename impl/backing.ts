// Backing files (digest §3, QEMU block.c bdrv_open_backing_file): what an overlay's
// guest sees where it has no cluster of its own. A layer is a qcow2 image (with
// its own chain) or a raw file, always opened read-only; reads past a layer's
// size are zeros. Names are resolved as bdrv_get_full_backing_filename does.
import { realpath } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { MapEntry } from './map.js';
import { NodeFile, systemErrorText } from './io/node-file.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { backingChainDepthMax, qcowMagic } from './limits.js';

export type BackingFormat = 'qcow2' | 'raw';

/** One layer below an overlay, with everything below it. */
export interface BackingLayer {
  readonly format: BackingFormat;
  /** The path it was opened by (the stored name resolved against the overlay's directory). */
  readonly filename: string;
  /** Guest size of this layer in bytes. */
  readonly size: number;
  /** `length` guest bytes at `offset` as this layer's guest sees them; zeros past `size`. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Block status of guest bytes [offset, offset + length) (inside `size`), as
   * qemu-img map reports them for this layer: depth 0 is this layer, 1 the one
   * below, and so on; `filename` is the layer that holds the data.
   */
  map(offset: number, length: number): Promise<ChainMapEntry[]>;
  /** The layer right below this one, if any (none for a raw layer or a qcow2 layer without backing). */
  readonly below: readonly BackingLayer[];
  close(): Promise<void>;
}

/** A MapEntry with the file whose bytes `offset` points into (qemu-img map's File column). */
export interface ChainMapEntry extends MapEntry {
  filename: string;
}

/** Where a chain is being opened: the files above (for loops) and how deep we are. */
export interface ChainContext {
  /** Real paths of the overlays above, the top first. */
  readonly above: readonly string[];
  /** Opens a qcow2 file read-only as a layer (given by the engine, which this file does not import). */
  readonly openQcow2: (file: NodeFile, filename: string, context: ChainContext) => Promise<BackingLayer>;
}

/**
 * The full path of a backing name stored in `overlayPath`
 * (bdrv_get_full_backing_filename): absolute names as they are, relative ones
 * relative to the overlay's directory (the current directory for an overlay
 * without a path).
 */
export function fullBackingPath(overlayPath: string | undefined, name: string): string {
  // QEMU's path_combine concatenates without normalising: "s/../base.qcow2" stays so.
  if (isAbsolute(name) || overlayPath === undefined || !overlayPath.includes('/')) return name;
  return `${overlayPath.slice(0, overlayPath.lastIndexOf('/') + 1)}${name}`;
}

/**
 * QEMU's format probe for a backing file without a backing-format extension
 * (bdrv_probe_all): the qcow2 magic makes it qcow2, anything else is raw.
 * QEMU 7.2 still opens such chains (it refuses only to create them).
 */
export function probeFormat(firstBytes: Uint8Array): BackingFormat {
  if (firstBytes.length < 4) return 'raw';
  return new DataView(firstBytes.buffer, firstBytes.byteOffset, 4).getUint32(0) === qcowMagic ? 'qcow2' : 'raw';
}

/**
 * Open the backing file `name` of the overlay at `overlayPath` read-only, with
 * its own chain. `format` is the backing-format extension (undefined: probed).
 * Errors (Qcow2Error): 'io' for a missing or unreadable file (QEMU's "Could not
 * open backing file"), 'invalid-argument' for a format other than qcow2 or raw,
 * 'corrupt' for a chain that comes back to a file above it (QEMU 7.2 hangs)
 * or one deeper than backingChainDepthMax.
 */
export async function openBacking(overlayPath: string | undefined, name: string, format: string | undefined, context: ChainContext): Promise<BackingLayer> {
  const filename = fullBackingPath(overlayPath, name);
  if (format !== undefined && format !== 'qcow2' && format !== 'raw') {
    throw new Qcow2Error('unsupported', `backing file '${name}': format '${format}' is not supported (qcow2 or raw)`);
  }
  if (context.above.length > backingChainDepthMax) {
    throw new Qcow2Error('corrupt', `backing chain deeper than ${backingChainDepthMax} files (at '${filename}')`);
  }
  let real: string;
  try {
    real = await realpath(filename);
  } catch (error) {
    throw new Qcow2Error('io', `could not open backing file '${filename}': ${systemErrorText(error)}`, { cause: error });
  }
  const loopAt = context.above.indexOf(real);
  if (loopAt >= 0) {
    throw new Qcow2Error('corrupt', `backing file '${filename}' creates a loop: it is already in the chain at depth ${loopAt}`);
  }
  const file = await NodeFile.open(filename, { readOnly: true });
  try {
    const chosen = format ?? probeFormat(await file.pread(0, 4));
    const inner: ChainContext = { ...context, above: [...context.above, real] };
    return chosen === 'qcow2' ? await context.openQcow2(file, filename, inner) : new RawLayer(file, filename, await file.length());
  } catch (error) {
    await file.close();
    if (error instanceof Qcow2Error && !(error.message.includes(filename))) {
      throw new Qcow2Error(error.code, `backing file '${filename}': ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/** Read `length` bytes at `offset` of a layer of `size` bytes through `readInside`, zeros past the end. */
export async function readClipped(size: number, offset: number, length: number, readInside: (offset: number, length: number) => Promise<Uint8Array>): Promise<Uint8Array> {
  const inside = Math.max(0, Math.min(length, size - offset));
  if (inside === length) return readInside(offset, length);
  const out = new Uint8Array(length);
  if (inside > 0) out.set(await readInside(offset, inside));
  return out;
}

/** A raw backing file: guest byte N is file byte N; its size is the file's length. */
class RawLayer implements BackingLayer {
  readonly format = 'raw';
  readonly below: readonly BackingLayer[] = [];

  constructor(
    private readonly file: NodeFile,
    readonly filename: string,
    readonly size: number,
  ) {}

  read(offset: number, length: number): Promise<Uint8Array> {
    return readClipped(this.size, offset, length, (at, n) => this.file.pread(at, n));
  }

  /**
   * Data at its own offset; holes of a sparse file are zeros and everything
   * else is data, as QEMU's raw_co_block_status reports them (SEEK_DATA).
   */
  async map(offset: number, length: number): Promise<ChainMapEntry[]> {
    assert(offset >= 0 && offset + length <= this.size, 'raw map inside the file');
    const out: ChainMapEntry[] = [];
    for (let at = offset; at < offset + length;) {
      const extent = this.file.extentAt(at, this.size);
      const end = Math.min(extent.end, offset + length);
      out.push({ start: at, length: end - at, depth: 0, present: true, zero: !extent.data, data: extent.data, offset: at, filename: this.filename });
      at = end;
    }
    return out;
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

