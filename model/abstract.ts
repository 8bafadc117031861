// abstractImage: a decoded image in the model's domain. Host offsets stay as
// names (of L2 tables and data clusters); equivalent() renames them.
import { toNumber } from './decode/decode-error.js';
import type { DecodedImage, DecodedL1, DecodedL2Entry } from './decode/image.js';

export interface AbstractView {
  /** 'active' or the snapshot's name. */
  readonly label: string;
  readonly id?: string;
  readonly diskSize: number;
  readonly l1: DecodedL1;
}

export interface AbstractImage {
  readonly version: 2 | 3;
  readonly clusterBits: number;
  readonly refcountBits: number;
  readonly lazyRefcounts: boolean;
  readonly extendedL2: boolean;
  readonly compressionType: 'zlib' | 'zstd';
  readonly virtualSize: number;
  readonly dirty: boolean;
  readonly corrupt: boolean;
  readonly active: AbstractView;
  readonly snapshots: readonly AbstractView[];
  readonly l2Tables: ReadonlyMap<number, readonly DecodedL2Entry[]>;
  /** Bytes of every cluster a normal entry points at, by host offset. */
  readonly dataBytes: ReadonlyMap<number, Uint8Array>;
  /** On-disk refcount of the host cluster at this offset. */
  refcount(hostOffset: number): bigint;
}

export function abstractImage(decoded: DecodedImage): AbstractImage {
  const { header } = decoded;
  const dataBytes = new Map<number, Uint8Array>();
  for (const table of decoded.l2Tables.values()) {
    for (const e of table) {
      if (e.kind === 'normal' && e.host !== undefined && !dataBytes.has(e.host)) dataBytes.set(e.host, decoded.reader.read(e.host, header.clusterSize));
    }
  }
  return {
    version: header.version,
    clusterBits: header.clusterBits,
    refcountBits: 2 ** header.refcountOrder,
    lazyRefcounts: header.lazyRefcounts,
    extendedL2: header.extendedL2,
    // decodeHeader admits 0 (zlib) and 1 (zstd) only
    compressionType: header.compressionType === 1 ? 'zstd' : 'zlib',
    virtualSize: header.size,
    dirty: header.dirty,
    corrupt: header.corrupt,
    active: { label: 'active', diskSize: header.size, l1: decoded.active },
    snapshots: decoded.snapshots.map((s) => ({ label: s.name, id: s.id, diskSize: s.diskSize === undefined ? header.size : toNumber(s.diskSize, `snapshot ${s.id} disk_size`, s.entryOffset + 48), l1: s.l1 })),
    l2Tables: decoded.l2Tables,
    dataBytes,
    refcount: (hostOffset) => decoded.refcounts.refcount(Math.floor(hostOffset / header.clusterSize)),
  };
}
