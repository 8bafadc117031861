// Guest reads and writes (QEMU qcow2_co_preadv_part / qcow2_alloc_host_offset):
// COW of the untouched part of newly allocated clusters from the old guest view,
// contiguous allocation per L2 table span, one pwrite per contiguous host run.
import type { ImageState } from './state.js';
import type { L2Entry } from './format/l2-entry.js';
import { assert, assertNever } from './assert.js';
import { readCompressedCluster } from './compressed.js';
import { allocUninitialized, preadInto } from './io/block-file.js';
import { pushRun, writePlanned, writeSpan, type ClusterWritePlan, type Run } from './host-write.js';
import { subclusterRun, writeInTableExtended } from './subcluster-write.js';

/**
 * The guest view of whole guest cluster `guestCluster` behind its entry: an
 * unallocated cluster shows the backing chain (zeros past its end).
 */
export async function clusterView(s: ImageState, entry: L2Entry, guestCluster: number): Promise<Uint8Array> {
  switch (entry.kind) {
    case 'unallocated':
      return s.backing === undefined ? new Uint8Array(s.g.clusterSize) : s.backing.read(guestCluster * s.g.clusterSize, s.g.clusterSize);
    case 'zero-plain':
    case 'zero-alloc':
      return new Uint8Array(s.g.clusterSize);
    case 'normal':
      return s.file.pread(entry.offset, s.g.clusterSize);
    case 'compressed':
      return readCompressedCluster(s.file, entry.descriptor, s.g, s.header.compressionType);
    default:
      return assertNever(entry, 'L2 entry');
  }
}

/**
 * Whether a cluster reads as zeros by its entry alone: a zero cluster, or an
 * unallocated one with no backing data under it (none, or past its end).
 */
export function readsAsZeros(s: ImageState, entry: L2Entry, guestCluster: number): boolean {
  if (entry.kind === 'zero-plain' || entry.kind === 'zero-alloc') return true;
  if (entry.kind !== 'unallocated') return false;
  return s.backing === undefined || guestCluster * s.g.clusterSize >= s.backing.size;
}

/**
 * Whether the backing chain reports guest bytes [from, to) as zeros by block
 * status, as qcow2_co_pwrite_zeroes asks is_zero of an unallocated head or
 * tail (data that happens to be zeros does not count): true without a backing
 * file and past its end.
 */
export async function backingReadsAsZeros(s: ImageState, from: number, to: number): Promise<boolean> {
  assert(from <= to, 'a range, not reversed');
  const inside = Math.min(to, s.backing?.size ?? 0);
  if (s.backing === undefined || inside <= from) return true;
  return (await s.backing.map(from, inside - from)).every((e) => e.zero);
}

export async function readGuest(s: ImageState, offset: number, length: number): Promise<Uint8Array> {
  // Every byte is either read from the file or zeroed below.
  const out = allocUninitialized(length);
  const cs = s.g.clusterSize;
  // Pending host reads, coalesced while host offsets stay contiguous, read
  // straight into their place in out. An empty run matches nothing: host 0 is
  // the header, never data.
  let runHost = 0;
  let runDest = 0;
  let runLength = 0;
  const flushRun = async () => {
    if (runLength > 0) await preadInto(s.file, runHost, out.subarray(runDest, runDest + runLength));
    runLength = 0;
  };
  const addHost = async (host: number, dest: number, n: number) => {
    if (runHost + runLength === host && runDest + runLength === dest) {
      runLength += n;
      return;
    }
    await flushRun();
    runHost = host;
    runDest = dest;
    runLength = n;
  };
  let pos = offset;
  while (pos < offset + length) {
    const guestCluster = Math.floor(pos / cs);
    const inCluster = pos % cs;
    let n = Math.min(cs - inCluster, offset + length - pos);
    const entry = await s.map.entry(guestCluster);
    if ((entry.kind === 'normal' || entry.kind === 'unallocated') && s.g.extendedL2) {
      // Up to the end of the run of subclusters of one kind. A bitmap QEMU calls
      // invalid fails the read (Qcow2Error 'corrupt') as in qcow2_get_host_offset.
      const run = subclusterRun(s, entry.kind, await s.map.bitmap(guestCluster), inCluster, n);
      n = run.length;
      if (run.kind === 'data' && entry.kind === 'normal') await addHost(entry.offset + inCluster, pos - offset, n);
      else if (run.kind === 'unallocated' && s.backing !== undefined) out.set(await s.backing.read(pos, n), pos - offset);
      else out.fill(0, pos - offset, pos - offset + n);
    } else if (entry.kind === 'normal') {
      await addHost(entry.offset + inCluster, pos - offset, n);
    } else if (entry.kind === 'compressed') {
      const cluster = await readCompressedCluster(s.file, entry.descriptor, s.g, s.header.compressionType);
      out.set(cluster.subarray(inCluster, inCluster + n), pos - offset);
    } else if (entry.kind === 'unallocated' && s.backing !== undefined) {
      out.set(await s.backing.read(pos, n), pos - offset);
    } else {
      out.fill(0, pos - offset, pos - offset + n); // unallocated (no backing) and zero kinds read as zeros
    }
    pos += n;
  }
  await flushRun();
  return out;
}

export async function writeGuest(s: ImageState, offset: number, data: Uint8Array): Promise<void> {
  const span = s.g.clusterSize * s.g.l2EntriesCount;
  let pos = offset;
  while (pos < offset + data.length) {
    const end = Math.min(offset + data.length, (Math.floor(pos / span) + 1) * span);
    const piece = data.subarray(pos - offset, end - offset);
    await (s.g.extendedL2 ? writeInTableExtended(s, pos, piece) : writeInTable(s, pos, piece));
    pos = end;
  }
}

/** A write that stays inside one L2 table. */
async function writeInTable(s: ImageState, offset: number, data: Uint8Array): Promise<void> {
  const cs = s.g.clusterSize;
  const { first, last, table } = await writeSpan(s, offset, data.length);
  const plans: ClusterWritePlan[] = [];
  for (let c = first; c <= last; c++) {
    const old = table.get(c % s.g.l2EntriesCount);
    const inPlace = (old.kind === 'normal' || old.kind === 'zero-alloc') && old.copied;
    // zero-alloc becoming normal links too
    plans.push({ guestCluster: c, old, host: inPlace ? old.offset : -1, link: !inPlace || old.kind === 'zero-alloc', fresh: !inPlace });
  }
  const addRuns = async (runs: Run[]) => {
    // Fresh clusters past the end of the file already read as zeros there (the
    // tracked bound, taken after allocating: it can only have grown, which just
    // means more COW).
    const zerosFrom = s.file.zerosFrom;
    for (const p of plans) {
      const clusterStart = p.guestCluster * cs;
      const from = Math.max(offset, clusterStart);
      const to = Math.min(offset + data.length, clusterStart + cs);
      const piece = data.subarray(from - offset, to - offset);
      const zeroView = readsAsZeros(s, p.old, p.guestCluster);
      const implicitZeros = zeroView && p.fresh && p.host >= zerosFrom;
      if (p.link && piece.length < cs && !implicitZeros) {
        // COW: the untouched part comes from the old guest view of the cluster.
        const whole = await clusterView(s, p.old, p.guestCluster);
        whole.set(piece, from - clusterStart);
        pushRun(runs, p.host, whole);
      } else {
        pushRun(runs, p.host + (from - clusterStart), piece);
      }
    }
  };
  await writePlanned(s, plans, addRuns, () => undefined);
}
