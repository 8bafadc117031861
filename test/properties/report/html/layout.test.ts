// The layout step without a browser: snapshot and compressed roles, guest views
// per snapshot, shared clusters counted per reach, and damage that leaves no
// header still laid out (never a throw).
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferReader } from '../../../../model/index.js';
import { imageLayout, renderHtml, type ImageLayout } from '../../../../properties/report/html/index.js';
import { Layout, compressedBit, offsetMask } from '../../../damage/layout.js';

let dir: string;
/** 4 KiB clusters: guest cluster 0 written, snapshot s1, guest cluster 0 rewritten, guest cluster 2 compressed. */
let image: Uint8Array;
/** 4 KiB clusters, 1 MiB: bitmaps b0 (512 B granularity) and b1 (4 KiB) added by qemu-img bitmap, then 64 KiB written by qemu-io. */
let withBitmaps: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-layout-'));
  const file = join(dir, 'snap.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', file, '1M']);
  execFileSync('qemu-io', ['-c', 'write -P 0x11 0 8k', file]);
  execFileSync('qemu-img', ['snapshot', '-c', 's1', file]);
  execFileSync('qemu-io', ['-c', 'write -P 0x22 0 4k', '-c', 'write -c -P 0x33 8k 4k', file]);
  image = new Uint8Array(await readFile(file));
  const bitmaps = join(dir, 'bitmaps.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=4096', bitmaps, '1M']);
  execFileSync('qemu-img', ['bitmap', '--add', '-g', '512', bitmaps, 'b0']);
  execFileSync('qemu-img', ['bitmap', '--add', bitmaps, 'b1']);
  execFileSync('qemu-io', ['-c', 'write -P 0x44 0 64k', bitmaps]);
  withBitmaps = new Uint8Array(await readFile(bitmaps));
});

function allClusters(layout: ImageLayout): number[] {
  return Array.from({ length: layout.clusters.count }, (_, i) => i);
}

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('imageLayout', () => {
  it('names the snapshot table, the snapshot L1 and compressed data, and draws each view', () => {
    const layout = imageLayout(bufferReader(image));
    const l = new Layout(image);
    const s1 = l.snapshots[0]!;
    expect(layout.findings).toEqual([]);
    expect(layout.clusters.roles(l.cluster(s1.l1TableOffset))).toEqual(['snapshotL1']);
    expect(allClusters(layout).some((i) => layout.clusters.roles(i).includes('snapshotTable'))).toBe(true);
    const compressed = l.l2Entries().find((e) => (e.raw & compressedBit) !== 0n)!;
    expect(compressed.guestCluster).toBe(2);
    expect(layout.views.map((v) => v.label)).toEqual(['active', 'snapshot 1 (s1)']);
    const [active, snapshot] = layout.views;
    expect(active!.entries.map((e) => [e.guestCluster, e.kind])).toEqual([[0, 'normal'], [1, 'normal'], [2, 'compressed']]);
    expect(snapshot!.entries.map((e) => [e.guestCluster, e.kind])).toEqual([[0, 'normal'], [1, 'normal']]);
    expect(layout.clusters.roles(active!.entries[2]!.hostCluster!)).toEqual(['compressed']);
    // Guest cluster 1 is shared: one host cluster, reached from both L1s, refcount 2, nothing wrong.
    const shared = active!.entries[1]!.hostCluster!;
    expect(snapshot!.entries[1]!.hostCluster).toBe(shared);
    expect(layout.clusters.roles(shared)).toEqual(['data']);
    expect(layout.clusters.references[shared]).toBe(2);
    expect(layout.refcounts[shared]).toBe(2n);
    expect(allClusters(layout).filter((i) => layout.clusters.marks(i).length > 0)).toEqual([]);
    expect(active!.entries[0]!.hostCluster).not.toBe(snapshot!.entries[0]!.hostCluster);
    expect(Number(l.l2Entries()[0]!.raw & offsetMask) / 4096).toBe(active!.entries[0]!.hostCluster);
  });

  it('reads extended L2 tables (16-byte entries): each written cluster is data, with nothing marked wrong', () => {
    const file = join(dir, 'extl2.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=16k,extended_l2=on', file, '1M']);
    // subclusters of clusters 0 and 3 (512 B each), and the whole of cluster 5
    execFileSync('qemu-io', ['-c', 'write -P 0x11 0 512', '-c', 'write -P 0x22 49664 1024', '-c', 'write -P 0x33 80k 16k', file]);
    const bytes = new Uint8Array(execFileSync('cat', [file]));
    const layout = imageLayout(bufferReader(bytes));
    expect(layout.findings).toEqual([]);
    const [active] = layout.views;
    expect(active!.entries.map((e) => [e.guestCluster, e.kind])).toEqual([[0, 'normal'], [3, 'normal'], [5, 'normal']]);
    for (const e of active!.entries) expect(layout.clusters.roles(e.hostCluster!)).toEqual(['data']);
    expect(allClusters(layout).filter((i) => layout.clusters.marks(i).length > 0)).toEqual([]);
  });

  it('names the bitmap directory, each bitmap table and each bitmap data cluster', () => {
    const layout = imageLayout(bufferReader(withBitmaps));
    const withRole = (role: string) => allClusters(layout).filter((i) => layout.clusters.roles(i).includes(role as never));
    expect(layout.findings).toEqual([]);
    const directory = Number(layout.header!.bitmaps!.directoryOffset) / 4096;
    expect(withRole('bitmapDirectory')).toEqual([directory]);
    // one table cluster and one data cluster per bitmap (2048 and 256 bits of a 1 MiB disk fit one cluster each)
    const tables = withRole('bitmapTable');
    const data = withRole('bitmapData');
    expect(tables).toHaveLength(2);
    expect(data).toHaveLength(2);
    for (const c of [directory, ...tables, ...data]) {
      expect(layout.clusters.roles(c)).toHaveLength(1);
      expect(layout.refcounts[c]).toBe(1n);
      expect(layout.clusters.references[c]).toBe(1);
    }
    // b0's data: bits 0..127 set (64 KiB of 512-byte granules), the rest clear
    const dataBytes = data.map((c) => withBitmaps.subarray(c * 4096, c * 4096 + 32));
    expect(dataBytes.some((b) => b.subarray(0, 16).every((x) => x === 0xff) && b[16] === 0)).toBe(true);
    expect(allClusters(layout).filter((i) => layout.clusters.marks(i).length > 0)).toEqual([]);
    expect(renderHtml(layout, { title: 'bitmaps' })).toContain('role-bitmapData');
  });

  it('lays out a file with no readable header as free clusters and says why, and renders it', () => {
    const junk = new Uint8Array(200_000).fill(0x5a);
    const layout = imageLayout(bufferReader(junk));
    expect(layout.clusters.count).toBe(Math.ceil(200_000 / 65536));
    expect(allClusters(layout).filter((i) => layout.clusters.roles(i).length > 0)).toEqual([]);
    expect(layout.findings.join('\n')).toMatch(/^Could not open/);
    expect(renderHtml(layout, { title: 'junk <img>' })).toContain('<title>junk &#60;img&#62;</title>');
  });

  it('keeps refcounts behind an unaligned refcount block unreadable, with no mark that needs them', () => {
    const copy = image.slice();
    const l = new Layout(copy);
    const entry = l.reftableEntry(0);
    new DataView(copy.buffer).setBigUint64(l.reftableOffset, entry + 512n);
    const layout = imageLayout(bufferReader(copy));
    expect(layout.refcounts[0]).toBeUndefined();
    expect(layout.clusters.marks(0)).not.toContain('leaked');
    expect(layout.findings.some((f) => f.includes("Can't get refcount"))).toBe(true);
  });
});
