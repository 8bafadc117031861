// Operations on an overlay and its backing file (qemu-img.c img_rebase and
// img_commit with block/commit.c; qcow2_make_empty for emptying the top).
import type { ImageState } from './state.js';
import type { BackingFormat, BackingLayer } from './backing.js';
import { assert } from './assert.js';
import { Qcow2Error } from './errors.js';
import { backingNameBytesMax, headerV3Bytes, incompatDirty } from './limits.js';
import { encodeCluster0 } from './format/header-extensions.js';
import { encodeReftable } from './format/refcount-table.js';
import { RefcountBlock } from './format/refcount-block.js';
import { clusterView, writeGuest } from './data-path.js';
import { discardGuest, writeZeroesGuest } from './zero-discard.js';
import { flushMetadata, writeHeader } from './flush.js';

/** qemu-img rebase [-u] -b FILE -F FMT, or -b '' (no backing file). */
export interface RebaseOptions {
  /** The new backing file name as stored in the header, resolved against the image's directory; null: none. */
  backingFile: string | null;
  /** Required with a backing file: QEMU 7.2 refuses to rebase without -F ("backing format must be specified"). */
  backingFormat?: BackingFormat;
  /** -u: only the header changes; the new backing file need not exist. */
  unsafe: boolean;
}

/** Opens a backing name as a read-only layer, resolved against the image (backing.ts openBacking). */
export type LayerOpener = (name: string, format: string | undefined) => Promise<BackingLayer>;

/** The bottom of a commit, opened read-write for the duration of the commit only. */
export interface WritableBase {
  readonly size: number;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Zeroes guest bytes, unmapping where the format can (QEMU's commit passes BDRV_REQ_MAY_UNMAP). */
  writeZeroes(offset: number, length: number): Promise<void>;
  /** Grows the base to `size` bytes (commit never shrinks it). */
  grow(size: number): Promise<void>;
  close(): Promise<void>;
}

export type BaseOpener = (layer: BackingLayer) => Promise<WritableBase>;

/** QEMU's compare_buffers works in 512-byte sectors: a differing sector is copied whole. */
const rebaseSectorBytes = 512;

/**
 * Rebase per RebaseOptions. Safe mode walks the clusters the image does not
 * allocate and, where a 512-byte sector of the old backing's view differs from
 * the new one's, writes the old bytes into the image (zeros past the old
 * backing's end), as img_rebase does; the write's copy-on-write fills the rest
 * of the cluster from the old backing. The header changes last.
 */
export async function rebaseImage(s: ImageState, o: RebaseOptions, openLayer: LayerOpener): Promise<void> {
  const name = o.backingFile === '' ? null : o.backingFile;
  if (name !== null) {
    if (o.backingFormat === undefined) throw new Qcow2Error('invalid-argument', `could not change the backing file to '${name}': backing format must be specified`);
    if (o.backingFormat !== 'qcow2' && o.backingFormat !== 'raw') throw new Qcow2Error('unsupported', `backing format '${String(o.backingFormat)}' is not qcow2 or raw`);
    if (new TextEncoder().encode(name).length > backingNameBytesMax) {
      throw new Qcow2Error('invalid-argument', `backing file name of ${new TextEncoder().encode(name).length} bytes is longer than ${backingNameBytesMax}`);
    }
  }
  if (!o.unsafe && s.g.extendedL2) {
    // img_rebase compares wherever the image is unallocated per byte: per subcluster here, not done yet.
    throw new Qcow2Error('unsupported', 'a safe rebase of an image with extended L2 entries is not supported (rebase -u is)');
  }
  if (!o.unsafe && s.backingName !== undefined && s.backing === undefined) {
    throw new Qcow2Error('invalid-argument', `safe rebase needs the old backing file '${s.backingName}' open`);
  }
  let next: BackingLayer | undefined;
  if (name !== null) {
    try {
      next = await openLayer(name, o.backingFormat);
    } catch (error) {
      if (!o.unsafe || !(error instanceof Qcow2Error)) throw error;
      next = unopenedLayer(name, o.backingFormat ?? 'qcow2', error);
    }
  }
  try {
    if (!o.unsafe) await copyDifferences(s, s.backing, next);
  } catch (error) {
    await next?.close();
    throw error;
  }
  const old = s.backing;
  s.backingName = name ?? undefined;
  s.ext.backingFormat = name === null ? undefined : o.backingFormat;
  s.backing = next;
  s.headerRebuild = true;
  await flushMetadata(s);
  await writeHeader(s);
  await old?.close();
}

async function copyDifferences(s: ImageState, old: BackingLayer | undefined, next: BackingLayer | undefined): Promise<void> {
  const cs = s.g.clusterSize;
  const size = s.header.size;
  const oldSize = old?.size ?? 0;
  for (let start = 0; start < size; start += cs) {
    if ((await s.map.entry(start / cs)).kind !== 'unallocated') continue;
    const length = Math.min(cs, size - start);
    const before = old === undefined ? new Uint8Array(length) : await old.read(start, length);
    const after = next === undefined ? new Uint8Array(length) : await next.read(start, length);
    for (let at = 0; at < length;) {
      const n = Math.min(rebaseSectorBytes, length - at);
      let to = at;
      while (to < length && !sameBytes(before, after, to, Math.min(to + rebaseSectorBytes, length))) to += rebaseSectorBytes;
      to = Math.min(to, length);
      if (to > at) {
        // Bytes past the old backing's end were zeros: QEMU writes them as zeroes.
        if (start + at >= oldSize) await writeZeroesGuest(s, start + at, to - at, false);
        else await writeGuest(s, start + at, before.subarray(at, to));
        at = to;
      } else {
        at += n;
      }
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A backing file a `rebase -u` named but that cannot be opened: the header
 * names it (QEMU does not check), and every read through it fails with the
 * reason, so nothing is silently read as zeros.
 */
function unopenedLayer(name: string, format: BackingFormat, reason: Qcow2Error): BackingLayer {
  const fail = (): never => {
    throw new Qcow2Error('io', `backing file '${name}' could not be opened: ${reason.message}`, { cause: reason });
  };
  return {
    format,
    filename: name,
    size: Number.MAX_SAFE_INTEGER,
    below: [],
    read: async () => fail(),
    map: async () => fail(),
    close: async () => undefined,
  };
}

/**
 * qemu-img commit (QEMU 7.2, measured, docs/semantics.md): every cluster the
 * image allocates goes into the backing file (data clusters as data, zero
 * clusters as zeroes with unmap), the backing file first grown to the image's
 * size if smaller. Emptying the image is the caller's next step
 * (canEmptyCompletely, writeCompletelyEmpty, emptyByDiscard).
 */
export async function commitToBacking(s: ImageState, openLayer: LayerOpener, openBase: BaseOpener): Promise<void> {
  const layer = s.backing;
  if (layer === undefined || s.backingName === undefined) throw new Qcow2Error('invalid-argument', 'image does not have a backing file');
  // mirror copies what the image allocates per byte: per subcluster here, not done yet
  if (s.g.extendedL2) throw new Qcow2Error('unsupported', 'commit of an image with extended L2 entries is not supported');
  const cs = s.g.clusterSize;
  const size = s.header.size;
  await layer.close();
  s.backing = undefined;
  try {
    const base = await openBase(layer);
    try {
      if (base.size < size) await base.grow(size);
      assert(base.size >= size, 'the base covers the whole image after growing');
      for (let start = 0; start < size; start += cs) {
        const entry = await s.map.entry(start / cs);
        const length = Math.min(cs, size - start);
        if (entry.kind === 'unallocated') continue;
        if (entry.kind === 'zero-plain' || entry.kind === 'zero-alloc') await base.writeZeroes(start, length);
        else await base.write(start, (await clusterView(s, entry, start / cs)).subarray(0, length));
      }
    } finally {
      await base.close();
    }
  } finally {
    s.backing = await openLayer(s.backingName, s.ext.backingFormat);
  }
}

/**
 * qcow2_make_empty's choice: make_completely_empty only for version 3 without
 * snapshots, when the header, the refcount table, one refcount block and the
 * L1 table fit in one refcount block; otherwise a full discard of every cluster.
 */
export function canEmptyCompletely(s: ImageState): boolean {
  const l1Clusters = Math.ceil((s.map.l1.size * 8) / s.g.clusterSize);
  return s.g.version === 3 && s.snapshots.length === 0 && 3 + l1Clusters <= s.g.refblockEntriesCount;
}

/** qcow2_make_empty's fallback: every cluster of the disk unallocated (the L2 tables stay). */
export async function emptyByDiscard(s: ImageState): Promise<void> {
  await discardGuest(s, 0, s.header.size, true);
  await flushMetadata(s);
}

/**
 * make_completely_empty: new metadata from scratch. The dirty bit goes on
 * first (until the header is rebuilt the refcounts describe nothing, so a
 * crash in between is repaired at the next open, as in QEMU); then a zeroed
 * refcount table at cluster 1 naming one refcount block at cluster 2, an
 * empty L1 table at cluster 3 (same size), refcount 1 for those 3 + L1
 * clusters; then cluster 0 rebuilt without the dirty bit (qcow2_mark_clean),
 * and the file cut after the L1 table. The caller must reopen the state.
 */
export async function writeCompletelyEmpty(s: ImageState): Promise<void> {
  assert(canEmptyCompletely(s), 'make_completely_empty only where QEMU takes it');
  const cs = s.g.clusterSize;
  const l1Clusters = Math.ceil((s.map.l1.size * 8) / cs);
  const used = 3 + l1Clusters;
  await flushMetadata(s);
  const incompatible = new Uint8Array(8);
  new DataView(incompatible.buffer).setBigUint64(0, s.header.incompatibleFeatures | incompatDirty);
  await s.file.pwrite(incompatibleFeaturesField, incompatible);
  await s.file.flush();
  await s.file.pwrite(cs, new Uint8Array((2 + l1Clusters) * cs));
  const reftable = new Float64Array(cs / 8);
  reftable[0] = 2 * cs;
  await s.file.pwrite(cs, encodeReftable(reftable));
  const block = new RefcountBlock(new Uint8Array(cs), s.header.refcountOrder);
  for (let c = 0; c < used; c++) block.set(c, 1);
  await s.file.pwrite(2 * cs, block.bytes);
  await s.file.flush();
  const h = s.header;
  h.l1TableOffset = 3 * cs;
  h.refcountTableOffset = cs;
  h.refcountTableClusters = 1;
  h.incompatibleFeatures &= ~incompatDirty;
  h.headerLength = headerV3Bytes + h.unknownFields.length;
  await s.file.pwrite(0, encodeCluster0(h, s.ext, s.backingName));
  await s.file.flush();
  await s.file.truncate(used * cs);
}

/** Byte offset of incompatible_features in the header. */
const incompatibleFeaturesField = 72;
