// Subclusters as QEMU 7.2 handles them (docs/semantics.md, "Subclusters"): each
// case runs the same ops on the model and on qemu-io / qemu-img with
// extended_l2=on, then compares every L2 entry of the first L2 table (host
// offset zero or not, compressed or not, and the 32 subcluster states read from
// the raw bitmap), the guest bytes of the whole disk and qemu-img map.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { initialState, modelMap, read, step, subclusterState, subclustersPerCluster, type ImageOptions, type ModelState, type Op } from '../../model/index.js';
import { qemuImgMap } from '../../oracle/index.js';
import { mapDisagreement } from '../../properties/checks/qemu-map.js';
import { imageBytes, join, qemuApply, qemuCreate, withTempDir } from './qemu.js';

const KiB = 1024;
const options: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1024 * KiB, extendedL2: true };

const w = (offset: number, length: number, pattern = 1): Op => ({ kind: 'write', offset, length, pattern });
const z = (offset: number, length: number, unmap = false): Op => ({ kind: 'writeZeroes', offset, length, unmap });
const c = (offset: number, length: number, pattern = 5): Op => ({ kind: 'writeCompressed', offset, length, pattern });
const d = (offset: number, length: number): Op => ({ kind: 'discard', offset, length });
const snap: Op = { kind: 'snapshotCreate', name: 's' };
const r = (size: number): Op => ({ kind: 'resize', size });

/** One cluster as a string: `-` (host offset 0), `H` (a host cluster) or `C` (compressed), then A/Z/. per subcluster. */
function modelClusters(state: ModelState, count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const entry = state.active[0]?.entries.get(i);
    if (entry?.kind === 'compressed') return `C${'.'.repeat(subclustersPerCluster)}`;
    const host = entry?.kind === 'normal' ? 'H' : '-';
    return host + Array.from({ length: subclustersPerCluster }, (_, k) => ({ allocated: 'A', zero: 'Z', unallocated: '.' })[subclusterState(entry, k)]).join('');
  });
}

/** The same from the file: 128-bit entries of the L2 table that L1 entry 0 points at. */
function imageClusters(bytes: Uint8Array, count: number): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const l1 = Number(view.getBigUint64(40));
  const l2 = Number(view.getBigUint64(l1) & 0x00fffffffffffe00n);
  return Array.from({ length: count }, (_, i) => {
    if (l2 === 0) return `-${'.'.repeat(subclustersPerCluster)}`;
    const word = view.getBigUint64(l2 + 16 * i);
    const bitmap = view.getBigUint64(l2 + 16 * i + 8);
    const host = (word & (1n << 62n)) !== 0n ? 'C' : (word & 0x00fffffffffffe00n) !== 0n ? 'H' : '-';
    const state = (k: number) => {
      const allocated = (bitmap >> BigInt(k)) & 1n;
      const zero = (bitmap >> BigInt(32 + k)) & 1n;
      return allocated && zero ? '!' : allocated ? 'A' : zero ? 'Z' : '.';
    };
    return host + Array.from({ length: subclustersPerCluster }, (_, k) => state(k)).join('');
  });
}

function runModel(ops: readonly Op[], o: ImageOptions, before: readonly Op[] = []): ModelState {
  let state = initialState(o);
  for (const op of [...before, ...ops]) {
    const r = step(state, op);
    expect(r.outcome.ok, `model: ${JSON.stringify(op)}`).toBe(true);
    state = r.state;
  }
  return state;
}

// `want` is what qemu-io 7.2.22 left in the first clusters when these were
// measured (64 KiB clusters, 2 KiB subclusters); the test measures it again.
const cases: ReadonlyArray<{ name: string; ops: Op[]; want: string[]; size?: number }> = [
  { name: 'a write of one subcluster allocates the cluster and marks only that subcluster', ops: [w(0, 2 * KiB)], want: ['HA' + '.'.repeat(31)] },
  { name: 'a partial subcluster write copies the rest of the subcluster (COW from zeros)', ops: [w(KiB, KiB)], want: ['HA' + '.'.repeat(31)] },
  { name: 'an unaligned write over two subclusters marks both', ops: [w(KiB, 3 * KiB)], want: ['HAA' + '.'.repeat(30)] },
  { name: 'a second write into the COPIED cluster is in place and marks its subcluster', ops: [w(0, 2 * KiB), w(4 * KiB, KiB, 2)], want: ['HA.A' + '.'.repeat(29)] },
  { name: 'write -z of one subcluster of an unallocated cluster: a zero bit, host offset 0', ops: [z(0, 2 * KiB)], want: ['-Z' + '.'.repeat(31)] },
  { name: 'write -z of parts of two unallocated subclusters zeroizes both whole', ops: [z(KiB, 2 * KiB)], want: ['-ZZ' + '.'.repeat(30)] },
  { name: 'write -z of a whole unallocated cluster', ops: [z(0, 64 * KiB)], want: ['-' + 'Z'.repeat(32)] },
  { name: 'write -z -u of one subcluster: no unmap below a cluster', ops: [z(0, 2 * KiB, true)], want: ['-Z' + '.'.repeat(31)] },
  { name: 'write -z of one allocated subcluster keeps the host cluster', ops: [w(0, 64 * KiB), z(2 * KiB, 2 * KiB)], want: ['HAZ' + 'A'.repeat(30)] },
  { name: 'write -z -u of one allocated subcluster keeps the host cluster too', ops: [w(0, 64 * KiB), z(2 * KiB, 2 * KiB, true)], want: ['HAZ' + 'A'.repeat(30)] },
  { name: 'write -z of a whole allocated cluster keeps it, all zero', ops: [w(0, 64 * KiB), z(0, 64 * KiB)], want: ['H' + 'Z'.repeat(32)] },
  { name: 'write -z -u of a whole allocated cluster frees it', ops: [w(0, 64 * KiB), z(0, 64 * KiB, true)], want: ['-' + 'Z'.repeat(32)] },
  { name: 'write -z of parts of allocated subclusters writes zero bytes', ops: [w(0, 64 * KiB), z(KiB, 2 * KiB)], want: ['H' + 'A'.repeat(32)] },
  { name: 'write -z of part of an unallocated subcluster in an allocated cluster zeroizes it', ops: [w(0, 2 * KiB), z(4 * KiB + 100, 200)], want: ['HA.Z' + '.'.repeat(29)] },
  { name: 'write -z -u with partial head and tail: head and tail written as zeros, the aligned middle zeroized', ops: [w(0, 128 * KiB), z(1000, 70000, true)], want: ['HA' + 'Z'.repeat(31), 'HZZ' + 'A'.repeat(30)] },
  { name: 'discard of a subcluster does nothing', ops: [w(0, 64 * KiB), d(2 * KiB, 2 * KiB)], want: ['H' + 'A'.repeat(32)] },
  { name: 'discard of an allocated cluster: host offset 0, all zero', ops: [w(0, 64 * KiB), d(0, 64 * KiB)], want: ['-' + 'Z'.repeat(32)] },
  { name: 'discard of a partly zero cluster at host offset 0 changes nothing', ops: [z(2 * KiB, 2 * KiB), d(0, 64 * KiB)], want: ['-.Z' + '.'.repeat(30)] },
  { name: 'discard of a cluster with one allocated subcluster', ops: [w(2 * KiB, 2 * KiB), d(0, 64 * KiB)], want: ['-' + 'Z'.repeat(32)] },
  { name: 'a compressed cluster has no subclusters', ops: [c(0, 64 * KiB)], want: ['C' + '.'.repeat(32)] },
  { name: 'a write into a compressed cluster copies all of it: all allocated', ops: [c(0, 64 * KiB), w(2 * KiB, KiB, 2)], want: ['H' + 'A'.repeat(32)] },
  { name: 'write -z whose partial tail is compressed falls back to zero bytes for the whole aligned part', ops: [c(64 * KiB, 64 * KiB), z(32 * KiB, 40 * KiB)], want: ['H' + '.'.repeat(16) + 'A'.repeat(16), 'H' + 'A'.repeat(32)] },
  { name: 'write -z -u over a whole cluster and a compressed partial tail: all written as zeros', ops: [c(64 * KiB, 64 * KiB), z(0, 72 * KiB, true)], want: ['H' + 'A'.repeat(32), 'H' + 'A'.repeat(32)] },
  { name: 'copy-on-write of a shared cluster spans its allocated subclusters and the write', ops: [w(10 * KiB, 2 * KiB), w(40 * KiB, 2 * KiB), snap, w(20 * KiB, KiB, 2)], want: ['H.....' + 'A'.repeat(16) + '.'.repeat(11)] },
  { name: 'zero subclusters inside that span become allocated', ops: [w(10 * KiB, 2 * KiB), z(14 * KiB, 2 * KiB), w(40 * KiB, 2 * KiB), snap, w(20 * KiB, KiB, 2)], want: ['H.....' + 'A'.repeat(16) + '.'.repeat(11)] },
  { name: 'a write before the span copies from the write to the last allocated subcluster', ops: [w(10 * KiB, 2 * KiB), snap, w(0, KiB, 2)], want: ['H' + 'A'.repeat(6) + '.'.repeat(26)] },
  { name: 'zero subclusters outside the span stay zero in the copy', ops: [w(10 * KiB, 2 * KiB), z(60 * KiB, 2 * KiB), snap, w(20 * KiB, KiB, 2)], want: ['H.....' + 'A'.repeat(6) + '.'.repeat(19) + 'Z.'] },
  {
    name: 'write -z to the end of a disk that ends inside a subcluster zeroes the subclusters inside the disk only',
    ops: [z(64 * KiB, 5632)],
    want: ['-' + '.'.repeat(32), '-ZZZ' + '.'.repeat(29)],
    size: 69 * KiB + 512,
  },
  { name: 'write -z to the end of a disk that ends on a subcluster boundary zeroizes the whole last cluster', ops: [z(64 * KiB, 4 * KiB)], want: ['-' + '.'.repeat(32), '-' + 'Z'.repeat(32)], size: 68 * KiB },
  { name: 'write -z of the partial last subcluster of the disk zeroizes it', ops: [w(0, 2 * KiB), z(64 * KiB + 2 * KiB, 512)], want: ['HA' + '.'.repeat(31), '-.Z' + '.'.repeat(30)], size: 66 * KiB + 512 },
  {
    name: 'growing a disk that ended inside a cluster leaves its never-written tail subcluster unallocated',
    ops: [r(128 * KiB - 2 * KiB), w(64 * KiB, 62 * KiB), r(128 * KiB)],
    want: ['-' + '.'.repeat(32), 'H' + 'A'.repeat(31) + '.'],
  },
  {
    name: 'growing a disk that ended inside a subcluster: the write rounded that subcluster out (zeros), it stays allocated',
    ops: [r(128 * KiB - KiB), w(64 * KiB, 63 * KiB), r(128 * KiB)],
    want: ['-' + '.'.repeat(32), 'H' + 'A'.repeat(32)],
  },
  {
    name: 'growing keeps zero tail subclusters zero',
    ops: [w(64 * KiB, 60 * KiB), z(124 * KiB, 4 * KiB), r(128 * KiB - 2 * KiB), r(128 * KiB)],
    want: ['-' + '.'.repeat(32), 'H' + 'A'.repeat(30) + 'ZZ'],
  },
];

describe('subclusters: the model against qemu-io 7.2 on extended_l2=on images', () => {
  it.each(cases)('$name', async ({ ops, want, size }) => {
    const o = size === undefined ? options : { ...options, virtualSize: size };
    const state = runModel(ops, o);
    const found = await withTempDir(async (dir) => {
      const file = join(dir, 'a.qcow2');
      await qemuCreate(file, o);
      expect(await qemuApply(file, ops)).toEqual(ops.map(() => true));
      const raw = join(dir, 'a.raw');
      await execa('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', file, raw]);
      return { clusters: imageClusters(await imageBytes(file), want.length), guest: await imageBytes(raw), map: await qemuImgMap(file) };
    });
    expect(found.clusters).toEqual(want);
    expect(modelClusters(state, want.length)).toEqual(want);
    expect(Buffer.from(read(state, 0, state.options.virtualSize)).equals(Buffer.from(found.guest))).toBe(true);
    expect(mapDisagreement(modelMap(state), found.map, state.options.virtualSize)).toBeUndefined();
  });
});

describe('subclusters: growing after a shrink inside an allocated subcluster (deliberate fix of QEMU 7.2)', () => {
  it('the model zeroes the stale tail and keeps its subclusters allocated; qemu-io 7.2 shows the old bytes', async () => {
    const ops = [w(64 * KiB, 64 * KiB, 7), r(128 * KiB - 3 * KiB), r(256 * KiB)];
    const o = { ...options, virtualSize: 128 * KiB };
    const state = runModel(ops, o);
    const want = ['-' + '.'.repeat(32), 'H' + 'A'.repeat(32)];
    const found = await withTempDir(async (dir) => {
      const file = join(dir, 'a.qcow2');
      await qemuCreate(file, o);
      expect(await qemuApply(file, ops)).toEqual(ops.map(() => true));
      const raw = join(dir, 'a.raw');
      await execa('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', file, raw]);
      return { clusters: imageClusters(await imageBytes(file), want.length), guest: await imageBytes(raw) };
    });
    expect(found.clusters).toEqual(want);
    expect(modelClusters(state, want.length)).toEqual(want);
    const tail = [128 * KiB - 3 * KiB, 128 * KiB] as const;
    expect(found.guest.subarray(...tail).every((b) => b === 7)).toBe(true);
    expect(read(state, tail[0], tail[1] - tail[0]).every((b) => b === 0)).toBe(true);
    expect(Buffer.from(read(state, 0, tail[0])).equals(Buffer.from(found.guest.subarray(0, tail[0])))).toBe(true);
  });
});

// Over a backing file: a 1 MiB standard base of 0x5a with a zero cluster (guest
// cluster 1) and an unallocated range, then an extended-L2 overlay (64 KiB clusters) and the ops.
const baseOptions: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1024 * KiB };
const baseOps: Op[] = [w(0, 1024 * KiB, 0x5a), z(64 * KiB, 64 * KiB), d(896 * KiB, 64 * KiB)];
const chainCases: ReadonlyArray<{ name: string; ops: Op[]; want: string[] }> = [
  { name: 'a partial subcluster write copies the rest of it from the backing file', ops: [w(KiB, 100)], want: ['HA' + '.'.repeat(31)] },
  { name: 'write -z of part of an unallocated subcluster over backing data writes zero bytes', ops: [z(KiB, 100)], want: ['HA' + '.'.repeat(31)] },
  { name: 'write -z of part of an unallocated subcluster over a zero backing cluster zeroizes it', ops: [z(64 * KiB + 100, 100)], want: ['-' + '.'.repeat(32), '-Z' + '.'.repeat(31)] },
  { name: 'discard of a whole unallocated cluster hides the backing file', ops: [d(0, 64 * KiB), z(66 * KiB, 2 * KiB), d(64 * KiB, 64 * KiB)], want: ['-' + 'Z'.repeat(32), '-' + 'Z'.repeat(32)] },
  { name: 'copy-on-write of a shared cluster copies unallocated subclusters in the span from the backing', ops: [w(2 * KiB, KiB), snap, w(10 * KiB, 100, 2)], want: ['H.' + 'A'.repeat(5) + '.'.repeat(26)] },
  { name: 'growth over the backing file zeroes from the next subcluster boundary', ops: [w(64 * KiB, KiB), r(66 * KiB + 512), r(1024 * KiB)], want: ['-' + '.'.repeat(32), 'HAA' + 'Z'.repeat(30)] },
];

describe('subclusters over a backing file: the model against qemu-io 7.2', () => {
  it.each(chainCases)('$name', async ({ ops, want }) => {
    const top: ImageOptions = { ...options, virtualSize: baseOptions.virtualSize };
    const state = runModel([{ kind: 'createOverlay', backingFormat: 'qcow2', options: top }, ...ops], baseOptions, baseOps);
    const found = await withTempDir(async (dir) => {
      const base = join(dir, 'base.qcow2');
      await qemuCreate(base, baseOptions);
      expect(await qemuApply(base, baseOps)).toEqual(baseOps.map(() => true));
      const file = join(dir, 'a.qcow2');
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', '-o', 'extended_l2=on,cluster_size=65536', file, String(top.virtualSize)]);
      expect(await qemuApply(file, ops)).toEqual(ops.map(() => true));
      const raw = join(dir, 'a.raw');
      await execa('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', file, raw]);
      return { clusters: imageClusters(await imageBytes(file), want.length), guest: await imageBytes(raw), map: await qemuImgMap(file) };
    });
    expect(found.clusters).toEqual(want);
    expect(modelClusters(state, want.length)).toEqual(want);
    expect(Buffer.from(read(state, 0, state.options.virtualSize)).equals(Buffer.from(found.guest))).toBe(true);
    expect(mapDisagreement(modelMap(state), found.map, state.options.virtualSize)).toBeUndefined();
  });
});
