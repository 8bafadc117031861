// The coverage of faults (issue 15): which metadata a fault interrupted, so a
// green run shows that crashes and errors reached refcount blocks, the refcount
// table, L2 and L1 tables, the header, data and the snapshot table.
import { bufferReader, decodeImage, type DecodedImage } from '../../model/index.js';
import type { BlkdebugEvent } from '../../oracle/index.js';
import type { Coverage } from '../coverage.js';

export type MetadataRole = 'header' | 'refcount table' | 'refcount block' | 'L1' | 'L2' | 'snapshot table' | 'snapshot L1' | 'data' | 'unreferenced';

/** One classifier of host offsets for one image: the role of the cluster each offset lies in. */
export function roleClassifier(fileBytes: Uint8Array): (hostOffset: number) => MetadataRole {
  let decoded: DecodedImage;
  try {
    decoded = decodeImage(bufferReader(fileBytes));
  } catch {
    return () => 'unreferenced';
  }
  const h = decoded.header;
  const cs = h.clusterSize;
  const roles = new Map<number, MetadataRole>();
  const mark = (offset: number | bigint, bytes: number, role: MetadataRole) => {
    const first = Math.floor(Number(offset) / cs);
    for (let c = first; c < first + Math.max(1, Math.ceil(bytes / cs)); c++) if (!roles.has(c)) roles.set(c, role);
  };
  mark(0, cs, 'header');
  mark(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table');
  const reftable = decoded.reader.read(Number(h.refcountTableOffset), h.refcountTableClusters * cs);
  const view = new DataView(reftable.buffer, reftable.byteOffset, reftable.byteLength);
  for (let i = 0; i + 8 <= reftable.length; i += 8) {
    const block = view.getBigUint64(i) & ~0x1ffn;
    if (block !== 0n) mark(block, cs, 'refcount block');
  }
  mark(h.l1TableOffset, h.l1Size * 8, 'L1');
  for (const s of decoded.snapshots) mark(s.l1TableOffset, s.l1Size * 8, 'snapshot L1');
  if (h.nbSnapshots > 0) {
    const last = decoded.snapshots.at(-1);
    mark(h.snapshotsOffset, last === undefined ? cs : last.entryOffset + 1 - Number(h.snapshotsOffset), 'snapshot table');
  }
  for (const [offset, table] of decoded.l2Tables) {
    mark(offset, cs, 'L2');
    for (const e of table) if ((e.kind === 'normal' || e.kind === 'zero-alloc') && e.host !== undefined) mark(e.host, cs, 'data');
  }
  return (hostOffset) => roles.get(Math.floor(hostOffset / cs)) ?? 'unreferenced';
}

/** Byte offset of the version 3 header's incompatible features (qcow2 spec, header field 9). */
const incompatibleFeaturesOffset = 72;
/** Incompatible feature bit 4: extended L2 entries. */
const extendedL2Bit = 1n << 4n;

/** Whether the image's version 3 header sets the extended-L2 incompatible feature. */
function hasExtendedL2(fileBytes: Uint8Array): boolean {
  if (fileBytes.length < incompatibleFeaturesOffset + 8) return false;
  const view = new DataView(fileBytes.buffer, fileBytes.byteOffset, fileBytes.byteLength);
  return view.getUint32(4) === 3 && (view.getBigUint64(incompatibleFeaturesOffset) & extendedL2Bit) !== 0n;
}

function bump(histogram: Record<string, number>, key: string): void {
  histogram[key] = (histogram[key] ?? 0) + 1;
}

/**
 * Records one fault: `crash` with the offsets of the writes it may lose, or
 * `ioError` with the offset of the access that failed (a flush has none), and
 * the operation it interrupted. `fileBytes` is the image file as it reads now;
 * `fileBytesAfter`, the file once the op completes (a snapshot op writes its
 * table and L1 copy where nothing refers to them yet): an offset unreferenced
 * now takes its role there.
 */
export function recordFault(
  cov: Coverage,
  fault: 'crash' | 'ioError',
  operation: string,
  offsets: readonly number[] | 'flush',
  fileBytes: Uint8Array,
  fileBytesAfter?: Uint8Array,
): void {
  bump(cov.faults, `${fault}@${operation}`);
  if (hasExtendedL2(fileBytes)) bump(cov.faults, `${fault}:extended L2 image`);
  if (offsets === 'flush') {
    bump(cov.faults, `${fault}:flush`);
    return;
  }
  const now = roleClassifier(fileBytes);
  const after = fileBytesAfter === undefined ? undefined : roleClassifier(fileBytesAfter);
  const role = (offset: number): MetadataRole => {
    const r = now(offset);
    return r === 'unreferenced' && after !== undefined ? after(offset) : r;
  };
  const roles = new Set(offsets.map(role));
  if (roles.size === 0) bump(cov.faults, `${fault}:nothing pending`);
  for (const r of roles) bump(cov.faults, `${fault}:${r}`);
}

/**
 * Records an `ioError` whose Nth access the operation never made: the op ran
 * unharmed, so the histogram shows how many drawn errors hit nothing.
 */
export function recordUnreachedFault(cov: Coverage, operation: string): void {
  bump(cov.faults, `ioError@${operation}`);
  bump(cov.faults, 'ioError:not reached');
}

/** The metadata phase a blkdebug event belongs to (the roles above; `flush` for the flushes). */
export function blkdebugPhase(event: BlkdebugEvent): MetadataRole | 'flush' {
  if (event === 'flush_to_os' || event === 'flush_to_disk') return 'flush';
  // the header write that activates a grown L1 table or a new refcount table comes right after these events (qcow2_grow_l1_table, alloc_refcount_block)
  if (event === 'l1_grow_activate_table' || event === 'refblock_alloc_switch_table') return 'header';
  if (event.startsWith('l2_')) return 'L2';
  if (event.startsWith('l1_')) return 'L1';
  if (event.startsWith('reftable_') || event === 'refblock_alloc_write_table') return 'refcount table';
  if (event.startsWith('refblock_') || event.startsWith('cluster_')) return 'refcount block';
  return 'data';
}

/**
 * What a fault on QEMU met: the blkdebug event whose injected error was seen
 * (by the op, by a flush command, which says so only through qemu-io's exit
 * status, or by qemu-io's closing flush) or where a kill held the
 * request (a break point); or why none was.
 */
export type QemuFaultSeen =
  | { readonly event: BlkdebugEvent; readonly where: 'op' | 'flush' | 'close' | 'break' }
  /** ioError: nothing failed: the event was not reached (at that occurrence) */
  | 'no failure seen'
  /** crash: SIGKILL between ops */
  | 'sigkill'
  /** crash inside an op: the break point was not reached before the op and a flush ended, then SIGKILL */
  | 'break not reached';

/**
 * Records one fault met by QEMU: by the phase of the blkdebug event it met
 * and by name, or by what happened instead (QemuFaultSeen); `dirty, repaired`
 * when a kill left a lazy image that needed `check -r all`; and the operation
 * it interrupted.
 */
export function recordQemuFault(cov: Coverage, fault: 'crash' | 'ioError', operation: string, seen: QemuFaultSeen, repaired = false): void {
  bump(cov.faults, `${fault}@${operation}`);
  if (repaired) bump(cov.faults, `${fault}:dirty, repaired`);
  if (typeof seen === 'string') {
    bump(cov.faults, `${fault}:${seen}`);
    return;
  }
  bump(cov.faults, `${fault}:${blkdebugPhase(seen.event)}`);
  const where = seen.where === 'close' ? ' (at close)' : seen.where === 'flush' ? ' (a flush)' : '';
  bump(cov.faults, `${fault}:blkdebug ${seen.where === 'break' ? 'break ' : ''}${seen.event}${where}`);
}

/**
 * Records a fault that met an overlay (an image with `backingDepth` backing
 * files below it): `crash:overlay` in the faults, and by depth in the chains
 * (`crash:overlay depth-N`), so a green run shows faults over backing files.
 */
export function recordOverlayFault(cov: Coverage, fault: 'crash' | 'ioError', backingDepth: number): void {
  if (backingDepth === 0) return;
  bump(cov.faults, `${fault}:overlay`);
  bump(cov.chains, `${fault}:overlay depth-${backingDepth}`);
}
