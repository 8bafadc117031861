// Operations are plain data: a discriminated union that serialises to JSON, so a
// shrunk counterexample can be saved in corpus/ and replayed byte for byte.
// Guest offsets and lengths are numbers (test images are far below 2^53 bytes).
// Backing chains are built and changed by three ops of their own:
// createOverlay, rebase and commit.

/** Geometry and options of an image, as `qemu-img create -o` takes them. */
export interface ImageOptions {
  /** 2 (compat=0.10) or 3 (compat=1.1). */
  readonly version: 2 | 3;
  /** 9 (512 B) … 21 (2 MiB). */
  readonly clusterBits: number;
  /** 1, 2, 4, 8, 16, 32 or 64; version 2 is always 16. */
  readonly refcountBits: number;
  /** Version 3 only. */
  readonly lazyRefcounts: boolean;
  /** Virtual disk size in bytes, a multiple of 512. */
  readonly virtualSize: number;
  /**
   * Extended L2 entries (`-o extended_l2=on`, incompatible bit 4): each cluster
   * is 32 subclusters, each allocated, zero or unallocated on its own. Version 3
   * and clusters of 16 KiB or more only. Absent (every corpus case saved before
   * it existed) means false.
   */
  readonly extendedL2?: boolean;
  /**
   * How compressed clusters are written (header byte 104); zstd is version 3
   * only. Absent means zlib, qemu-img create's default, so cases saved before
   * the field existed keep their meaning.
   */
  readonly compressionType?: 'zlib' | 'zstd';
}

export type Op =
  | WriteOp
  | WriteCompressedOp
  | WriteZeroesOp
  | DiscardOp
  | ResizeOp
  | SnapshotCreateOp
  | SnapshotRevertOp
  | SnapshotDeleteOp
  | FlushOp
  | ReopenOp
  | CreateOverlayOp
  | RebaseOp
  | CommitOp;

/**
 * Guest data write. Content is `pattern` repeated (qemu-io `write -P`), or, when
 * `seed` is given, the pseudo-random bytes `writeBytes` derives from it (so an
 * off-by-some-bytes bug inside one cluster cannot hide behind a constant fill).
 */
export interface WriteOp {
  readonly kind: 'write';
  readonly offset: number;
  readonly length: number;
  readonly pattern: number;
  readonly seed?: number;
}
/**
 * qemu-io `write -c -P pattern`: whole clusters (the last one may end at the
 * virtual size), each one stored as a compressed stream. The content always
 * compresses: QEMU writes a cluster that does not compress below the cluster
 * size as a normal cluster, which the model could not predict without a
 * compressor. It is `pattern` repeated, or with `seed` bytes whose high nibble
 * is the pattern's and whose low nibble is pseudo-random (4 bits of entropy a
 * byte: streams of about half a cluster, so that they straddle host clusters).
 */
export interface WriteCompressedOp {
  readonly kind: 'writeCompressed';
  readonly offset: number;
  readonly length: number;
  readonly pattern: number;
  readonly seed?: number;
}
/** qemu-io `write -z [-u]`. */
export interface WriteZeroesOp {
  readonly kind: 'writeZeroes';
  readonly offset: number;
  readonly length: number;
  readonly unmap: boolean;
}
/** qemu-io `discard`. */
export interface DiscardOp {
  readonly kind: 'discard';
  readonly offset: number;
  readonly length: number;
}
/** qemu-io `truncate` / `qemu-img resize` (shrink allowed). */
export interface ResizeOp {
  readonly kind: 'resize';
  readonly size: number;
}
/** `qemu-img snapshot -c NAME`. */
export interface SnapshotCreateOp {
  readonly kind: 'snapshotCreate';
  readonly name: string;
}
/** `qemu-img snapshot -a NAME`: NAME is a snapshot ID, else a name (findSnapshotByIdOrName). */
export interface SnapshotRevertOp {
  readonly kind: 'snapshotRevert';
  readonly name: string;
}
/** `qemu-img snapshot -d NAME`: NAME is a name only, never an ID (findSnapshotByName). */
export interface SnapshotDeleteOp {
  readonly kind: 'snapshotDelete';
  readonly name: string;
}
/** qemu-io `flush`. */
export interface FlushOp {
  readonly kind: 'flush';
}
/** Close the image and open it again read-write. */
export interface ReopenOp {
  readonly kind: 'reopen';
}

/**
 * `qemu-img create -f qcow2 -b TOP -F FORMAT NEW SIZE`: the current image
 * becomes the backing file of a new, empty qcow2 image with `options`, which
 * is the image from then on. With `backingFormat` 'raw' the backing file is
 * the current image's guest bytes as a raw file (every byte written, no
 * holes: `qemu-img convert -O raw` would leave holes) and the old image, with
 * its snapshots and chain, is gone.
 */
export interface CreateOverlayOp {
  readonly kind: 'createOverlay';
  readonly backingFormat: 'qcow2' | 'raw';
  readonly options: ImageOptions;
}
/**
 * `qemu-img rebase [-u] -b FILE -F FORMAT IMAGE`: FILE is the layer `depth`
 * steps down the current chain (1 = the current backing file, 2 = its
 * backing file, …), or no backing file at all for depth 0 (`-b ''`). Safe
 * (`unsafe` false) keeps what the guest reads; unsafe changes the header only.
 */
export interface RebaseOp {
  readonly kind: 'rebase';
  readonly depth: number;
  readonly unsafe: boolean;
}
/** `qemu-img commit IMAGE`: the image's allocated data goes into its backing file, then the image is emptied. */
export interface CommitOp {
  readonly kind: 'commit';
}

export type OpKind = Op['kind'];
export const opKinds: readonly OpKind[] = [
  'write',
  'writeCompressed',
  'writeZeroes',
  'discard',
  'resize',
  'snapshotCreate',
  'snapshotRevert',
  'snapshotDelete',
  'flush',
  'reopen',
  'createOverlay',
  'rebase',
  'commit',
];

/** The ops that build or change a backing chain. */
export type ChainOpKind = (CreateOverlayOp | RebaseOp | CommitOp)['kind'];
export const chainOpKinds: readonly ChainOpKind[] = ['createOverlay', 'rebase', 'commit'];

export function isChainOpKind(kind: string): kind is ChainOpKind {
  return (chainOpKinds as readonly string[]).includes(kind);
}

/**
 * Why an operation is refused. Every implementation must fail exactly when the
 * model does, with the same kind.
 * - out-of-range: guest access past the virtual size (qemu-io: Input/output error)
 * - invalid-argument: e.g. a resize to a size that is not a multiple of 512
 * - unknown-snapshot: revert/delete of a name that does not exist
 * - unsupported: refused for this version (resize of a v2 image with snapshots)
 * - refcount-overflow: a snapshot create/revert would push a refcount past 2^bits - 1
 * - compressed-overwrite: a compressed write reached a cluster that has a host
 *   offset (qcow2_alloc_compressed_cluster_offset: EIO, "compression can't
 *   overwrite anything")
 * - io: a read, write or flush of the image file failed (EIO, ENOSPC); the model
 *   never answers it by itself: an injected fault (model/crash.ts) does
 */
export type OpErrorKind =
  | 'out-of-range'
  | 'invalid-argument'
  | 'unknown-snapshot'
  | 'unsupported'
  | 'refcount-overflow'
  | 'compressed-overwrite'
  | 'io';

export type Outcome = { readonly ok: true } | { readonly ok: false; readonly error: OpErrorKind; readonly message: string };

/**
 * The bytes a write op puts on the disk. With a seed: a fixed xorshift32 stream,
 * independent of the offset, so the same op always writes the same bytes.
 */
export function writeBytes(op: WriteOp): Uint8Array {
  const out = new Uint8Array(op.length);
  if (op.seed === undefined) {
    out.fill(op.pattern & 0xff);
    return out;
  }
  let x = (op.seed | 0) || 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The bytes a compressed write op puts on the disk (see WriteCompressedOp). */
export function compressedWriteBytes(op: WriteCompressedOp): Uint8Array {
  if (op.seed === undefined) return new Uint8Array(op.length).fill(op.pattern & 0xff);
  const noise = writeBytes({ kind: 'write', offset: op.offset, length: op.length, pattern: 0, seed: op.seed });
  return noise.map((b) => (op.pattern & 0xf0) | (b & 0x0f));
}

/** A snapshot name as one shell word: plain when it is safe, else single-quoted (so '' shows the empty name). */
function shellWord(name: string): string {
  return /^[\w.,:@%+=/-]+$/.test(name) ? name : `'${name.replaceAll("'", `'\\''`)}'`;
}

/** The op as a qemu-io / qemu-img command line, so a counterexample reads as a script. */
export function formatOp(op: Op): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  switch (op.kind) {
    case 'write':
      return op.seed === undefined
        ? `write -P ${hex(op.pattern & 0xff)} ${hex(op.offset)} ${hex(op.length)}`
        : `write -s <seed ${op.seed}> ${hex(op.offset)} ${hex(op.length)}`;
    case 'writeCompressed':
      return op.seed === undefined
        ? `write -c -P ${hex(op.pattern & 0xff)} ${hex(op.offset)} ${hex(op.length)}`
        : `write -c -s <seed ${op.seed} nibbles, high 0x${(op.pattern & 0xf0).toString(16)}> ${hex(op.offset)} ${hex(op.length)}`;
    case 'writeZeroes':
      return `write -z${op.unmap ? ' -u' : ''} ${hex(op.offset)} ${hex(op.length)}`;
    case 'discard':
      return `discard ${hex(op.offset)} ${hex(op.length)}`;
    case 'resize':
      return `truncate ${hex(op.size)}`;
    case 'snapshotCreate':
      return `snapshot -c ${shellWord(op.name)}`;
    case 'snapshotRevert':
      return `snapshot -a ${shellWord(op.name)}`;
    case 'snapshotDelete':
      return `snapshot -d ${shellWord(op.name)}`;
    case 'flush':
      return 'flush';
    case 'reopen':
      return 'reopen';
    case 'createOverlay': {
      const o = op.options;
      const compat = o.version === 2 ? '0.10' : '1.1';
      return `create -b <top> -F ${op.backingFormat} -o compat=${compat},cluster_size=${2 ** o.clusterBits},refcount_bits=${o.refcountBits},lazy_refcounts=${o.lazyRefcounts ? 'on' : 'off'} <new top> ${hex(o.virtualSize)}`;
    }
    case 'rebase':
      return `rebase${op.unsafe ? ' -u' : ''} -b ${op.depth === 0 ? "''" : `<depth ${op.depth}>`}`;
    case 'commit':
      return 'commit';
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}
