// The HTML report in a real browser (Debian's Chromium through playwright-core):
// pages of known damage carry the right roles and marks on the right cells, a
// data divergence against the model is drawn and listed, big images get a
// summary scale that zooms, and each page is saved as a PNG under screenshots/.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bufferReader, initialState, step, type ImageOptions } from '../../../../model/index.js';
import { applyModel, cellsMax, imageLayout, renderHtml } from '../../../../properties/report/html/index.js';
import { runReplay } from '../../../../cli/commands/replay.js';
import { launchChromium, type BrowserSession } from '../../../browser/chromium.js';
import { runCli } from '../../../cli/run-cli.js';
import { Layout, offsetMask, setEntry } from '../../../damage/layout.js';

const screenshots = join(process.cwd(), 'screenshots');
const options: ImageOptions = { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 4 * 1024 * 1024 };
let session: BrowserSession;
let dir: string;
/** 4 MiB, 64 KiB clusters: 0xab over guest clusters 0-1, 0xcd at guest cluster 16 (built by QEMU). */
let base: Uint8Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-html-'));
  const file = join(dir, 'base.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '4M']);
  execFileSync('qemu-io', ['-c', 'write -P 0xab 0 128k', '-c', 'write -P 0xcd 1M 64k', file]);
  base = new Uint8Array(await readFile(file));
  await mkdir(screenshots, { recursive: true });
  session = await launchChromium();
}, 60_000);

afterAll(async () => {
  await session?.close();
  await rm(dir, { recursive: true, force: true });
});

interface CellView {
  readonly role: string;
  readonly marks: string[];
  readonly refcount?: string;
  readonly expected?: string;
}

/** The cell of host cluster `cluster` as the page drew it (one cluster per cell here). */
async function cell(page: Page, cluster: number): Promise<CellView> {
  const el = page.locator(`#grid .cell[data-first="${cluster}"][data-last="${cluster}"]`);
  const [role, marks, refcount, expected] = await Promise.all(['role', 'marks', 'refcount', 'expected'].map((a) => el.getAttribute(`data-${a}`)));
  return { role: role ?? '', marks: (marks ?? '').split(' ').filter((m) => m !== ''), ...(refcount === null ? {} : { refcount }), ...(expected === null ? {} : { expected }) };
}

async function show(name: string, image: Uint8Array, model?: Parameters<typeof applyModel>[2]): Promise<Page> {
  const layout = imageLayout(bufferReader(image));
  const expectation = model === undefined ? undefined : applyModel(layout, bufferReader(image), model);
  const page = await session.open(renderHtml(layout, { title: `test: ${name}` }, expectation), name);
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  return page;
}

describe('HTML report in Chromium', () => {
  it('draws a clean image: every cluster with its role, nothing marked', async () => {
    const l = new Layout(base);
    const page = await show('clean', base);
    expect((await cell(page, 0)).role).toBe('header');
    expect((await cell(page, l.cluster(l.l1Offset))).role).toBe('l1');
    expect((await cell(page, l.cluster(l.reftableOffset))).role).toBe('refcountTable');
    expect((await cell(page, l.cluster(l.l2TableOffset(0)))).role).toBe('l2');
    const data = l.cluster(Number(l.l2Entries()[0]!.raw & offsetMask));
    expect(await cell(page, data)).toEqual({ role: 'data', marks: [], refcount: '1' });
    expect(await page.locator('#grid .cell.marked').count()).toBe(0);
    expect(await page.locator('tr[data-guest="16"]').count()).toBe(1);
  });

  it('marks a leak: a data cluster no L2 entry reaches keeps refcount 1', async () => {
    const image = base.slice();
    const l = new Layout(image);
    const entry = l.l2Entries()[0]!;
    setEntry(image, entry.at, 0n);
    const page = await show('leak', image);
    expect(await cell(page, l.cluster(Number(entry.raw & offsetMask)))).toEqual({ role: 'free', marks: ['leaked'], refcount: '1' });
    expect(await page.locator('#findings').textContent()).toContain('Leaked cluster');
  });

  it('marks an overlap: an L2 entry pointing into the L1 table', async () => {
    const image = base.slice();
    const l = new Layout(image);
    const entry = l.l2Entries()[0]!;
    setEntry(image, entry.at, (entry.raw & ~offsetMask) | BigInt(l.l1Offset));
    const page = await show('overlap', image);
    const l1 = await cell(page, l.cluster(l.l1Offset));
    expect(l1.role).toBe('mixed');
    expect(l1.marks).toEqual(expect.arrayContaining(['overlapping', 'referencedTwice']));
    expect(await page.locator(`#grid .cell[data-first="${l.cluster(l.l1Offset)}"]`).getAttribute('data-roles')).toBe('l1 data');
  });

  it('marks a wrong refcount: a mapped data cluster with refcount 0', async () => {
    const image = base.slice();
    const l = new Layout(image);
    const data = l.cluster(Number(l.l2Entries()[1]!.raw & offsetMask));
    l.setRefcount(data, 0);
    const page = await show('refcount', image);
    expect(await cell(page, data)).toEqual({ role: 'data', marks: ['refcountDiffers'], refcount: '0' });
  });

  it('marks a data divergence against the model and lists both sides', async () => {
    // The model wrote 0xab at guest cluster 0 as the image did, but 0xee (not 0xcd) at guest cluster 16.
    let state = initialState(options);
    for (const op of [{ kind: 'write', offset: 0, length: 131072, pattern: 0xab }, { kind: 'write', offset: 1048576, length: 65536, pattern: 0xee }] as const) state = step(state, op).state;
    const l = new Layout(base);
    const at16 = l.l2Entries().find((e) => e.guestCluster === 16)!;
    const page = await show('divergence', base, state);
    const host = l.cluster(Number(at16.raw & offsetMask));
    expect(await cell(page, host)).toEqual({ role: 'data', marks: ['unexpectedContent'], refcount: '1', expected: '1' });
    expect(await cell(page, l.cluster(Number(l.l2Entries()[0]!.raw & offsetMask)))).toMatchObject({ marks: [], expected: '1' });
    expect(await page.locator('tr.differs[data-guest="16"]').count()).toBe(1);
    expect(await page.locator('#differences').textContent()).toContain('normal');
    await page.locator(`#grid .cell[data-first="${host}"]`).click();
    expect(await page.locator('#cell-info').textContent()).toContain('model expects refcount: 1');
  });

  it('buckets a big image into a summary scale and zooms into one bucket', async () => {
    // 3 MiB of data in 512-byte clusters: over 6144 host clusters, more than cellsMax cells.
    const file = join(dir, 'big.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', file, '8M']);
    execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 3M', file]);
    const page = await show('big', new Uint8Array(await readFile(file)));
    const cells = page.locator('#grid .cell');
    expect(await cells.count()).toBeLessThanOrEqual(cellsMax);
    expect(await page.locator('#scale').textContent()).toContain('one cell = 2 clusters');
    // Summary cells take their majority role: a clean image has no 'mixed' cell even where L2 tables and data interleave.
    expect(await page.locator('#grid .cell[data-role="mixed"]').count()).toBe(0);
    expect(await page.locator('#grid .cell[data-role="data"]').count()).toBeGreaterThan(3000);
    await cells.nth(0).click();
    expect(await page.locator('#scale').textContent()).toBe('one cell = one cluster');
    expect(await cells.count()).toBe(2);
    expect(await cell(page, 0)).toMatchObject({ role: 'header' });
  });

  it('keeps a sparse 1 TiB image of over a million clusters usable: a bounded page, a summary scale, zoom by click and by range', async () => {
    // preallocation=metadata maps every guest cluster: 1 TiB / 1 MiB = 2^20 data clusters, a sparse file of 1 TiB
    const file = join(dir, 'huge.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'cluster_size=1M,preallocation=metadata', file, '1T']);
    const run = await runCli(['map', '--output=html', file]);
    expect(run.exitCode).toBe(0);
    // 2^20 data clusters, 8 L2 tables, 3 refcount blocks, header, L1, refcount table
    const clusters = 2 ** 20 + 14;
    expect(/Host clusters \((\d+) × 1048576 bytes/.exec(run.stdout)?.[1]).toBe(String(clusters));
    // runs of equal clusters and at most guestRowsMax guest rows: well under a byte per cluster
    expect(run.stdout.length).toBeLessThan(512 * 1024);
    const page = await session.open(run.stdout, 'huge');
    await page.screenshot({ path: join(screenshots, 'huge.png'), fullPage: true });
    const per = Math.ceil(clusters / cellsMax);
    expect(await page.locator('#scale').textContent()).toBe(`one cell = ${per} clusters (summary; click a cell to zoom)`);
    const cells = page.locator('#grid .cell');
    expect(await cells.count()).toBe(Math.ceil(clusters / per));
    // every summary cell is mostly data (the first holds header and tables too), and nothing is wrong
    expect(await page.locator('#grid .cell[data-role="data"]').count()).toBe(Math.ceil(clusters / per));
    expect(await page.locator('#grid .cell.marked').count()).toBe(0);
    // click the last summary cell: one cell per cluster, ending at the refcount block QEMU appended last
    await cells.last().click();
    expect(await page.locator('#scale').textContent()).toBe('one cell = one cluster');
    expect(await cell(page, clusters - 1)).toEqual({ role: 'refcountBlock', marks: [], refcount: '1' });
    expect(await cell(page, clusters - 2)).toEqual({ role: 'data', marks: [], refcount: '1' });
    // a typed range far into the file
    await page.locator('#range-from').fill('700000');
    await page.locator('#range-to').fill('700099');
    await page.locator('#zoom').click();
    expect(await cells.count()).toBe(100);
    expect(await cell(page, 700050)).toEqual({ role: 'data', marks: [], refcount: '1' });
    await page.locator('#zoom-all').click();
    expect(await cells.count()).toBe(Math.ceil(clusters / per));
  }, 120_000);

  it('draws the bitmap directory, tables and data of an image with bitmaps (qemu-img bitmap --add, then writes)', async () => {
    const file = join(dir, 'bitmaps.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '4M']);
    execFileSync('qemu-img', ['bitmap', '--add', '-g', '4096', file, 'b0']);
    execFileSync('qemu-io', ['-c', 'write -P 0x11 0 256k', file]);
    const image = new Uint8Array(await readFile(file));
    const layout = imageLayout(bufferReader(image));
    const page = await show('bitmaps', image);
    const directory = Number(layout.header!.bitmaps!.directoryOffset) / 65536;
    expect(await cell(page, directory)).toEqual({ role: 'bitmapDirectory', marks: [], refcount: '1' });
    const byRole = (role: string) => Array.from({ length: layout.clusters.count }, (_, i) => i).filter((i) => layout.clusters.roles(i).includes(role as never));
    for (const role of ['bitmapTable', 'bitmapData']) {
      const [only, ...rest] = byRole(role);
      expect(rest, role).toEqual([]);
      expect(await cell(page, only!), role).toEqual({ role, marks: [], refcount: '1' });
    }
    expect(await page.locator('#grid .cell.marked').count()).toBe(0);
    expect(await page.locator('.legend').textContent()).toContain('bitmapData');
  });

  it('replay --html draws a real counterexample: the failing step marked, the leaked cluster on the grid', async () => {
    // A known QEMU divergence kept in the corpus: after `snapshot -c s1` QEMU leaves host cluster 13 leaked.
    const html = join(dir, 'case.html');
    const lines: string[] = [];
    const code = await runReplay('corpus/cases/qemu-structure-check-image-snapshotCreate-105ddf5572f34d2c.json', { trace: false, html }, (l) => lines.push(l));
    expect(code).toBe(1);
    expect(lines).toContain(`html: ${html}`);
    const page = await session.open(await readFile(join(dir, 'case.html'), 'utf8'), 'replay');
    expect(await page.locator('#script .failing').textContent()).toContain('snapshot -c s1');
    expect(await page.locator('#script [data-step]').count()).toBe(2);
    expect(await page.locator('#divergence').textContent()).toContain('Leaked cluster 13');
    expect(await cell(page, 13)).toMatchObject({ role: 'free', marks: ['leaked'], refcount: '1' });
    expect(await page.locator('#grid .cell.marked').count()).toBe(1);
    await page.locator('#grid .cell[data-first="13"]').click();
    expect(await page.locator('#cell-info').textContent()).toContain('refcount on disk: 1, references found: 0');
    await page.screenshot({ path: join(screenshots, 'replay-leak.png'), fullPage: true });
  }, 60_000);

  it('map --output=html prints the page of a damaged image (reserved bits in an L1 entry), the file untouched', async () => {
    const image = base.slice();
    const l = new Layout(image);
    setEntry(image, l.l1EntryAt(0), l.l1Entry(0) | 1n);
    const file = join(dir, 'damaged.qcow2');
    await writeFile(file, image);
    const run = await runCli(['map', '--output=html', file]);
    expect(run.exitCode).toBe(0);
    expect(new Uint8Array(await readFile(file))).toEqual(image);
    const page = await session.open(run.stdout, 'map-damaged');
    expect((await cell(page, l.cluster(l.l2TableOffset(0)))).role).toBe('l2');
    expect(await page.locator('#findings').textContent()).toContain('reserved bits');
  }, 60_000);
});
