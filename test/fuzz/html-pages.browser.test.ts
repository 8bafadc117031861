// fuzz --html DIR for real: a campaign (the function `qcow2-verify fuzz` runs)
// with a fault planted in our side of the malformed-image verdict writes a page
// for the finding it saves, and the page loads in Debian's Chromium with the
// mutant image drawn, the finding in words, the mutations and the replay command.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign } from '../../corpus/campaign/campaign.js';
import { ImageFuzzer } from '../../corpus/mutants/image-fuzzer.js';
import { judge, type Judgement } from '../../corpus/mutants/judge.js';
import { qemuVerdict } from '../../corpus/mutants/qemu-verdict.js';
import { caseImage } from '../../corpus/replay/replay-case.js';
import { loadCorpus } from '../../corpus/store.js';
import { bufferReader } from '../../model/index.js';
import { imageLayout, type ImageLayout } from '../../properties/report/html/index.js';
import { launchChromium, type BrowserSession } from '../browser/chromium.js';

const screenshots = join(process.cwd(), 'screenshots');
const planted = 'planted: the engine asserts on every image it opens';

/** The image path's canary: QEMU's verdict is real, ours is an assertion on open, so every mutant is a finding. */
class PlantedFuzzer extends ImageFuzzer {
  override async judgeBytes(bytes: Uint8Array): Promise<Judgement> {
    const error = { kind: 'assertion', message: planted } as const;
    return judge(bytes, { kind: 'verdict', verdict: { open: { ok: false, error }, check: { ok: false, error } } }, await qemuVerdict(bytes));
  }
}

let session: BrowserSession;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qcow2-verify-fuzz-html-'));
  await mkdir(screenshots, { recursive: true });
  session = await launchChromium();
}, 60_000);

afterAll(async () => {
  await session?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The role the page shows for a cluster, as the layout's first role (clusterRoles order). */
function primaryRole(layout: ImageLayout, cluster: number): string {
  const roles = layout.clusters.roles(cluster);
  return roles.length === 0 ? 'free' : roles.length === 1 ? roles[0]! : 'mixed';
}

describe('fuzz --html', () => {
  it('writes a page for a malformed-image finding: the mutant drawn, the finding in words, mutations and replay command', async () => {
    const corpusDir = join(dir, 'corpus');
    const htmlDir = join(dir, 'html');
    const summary = await runCampaign({
      impl: 'ts',
      seed: 17,
      shard: { index: 0, count: 1 },
      budget: { kind: 'runs', count: 1 },
      kinds: 'images',
      corpusDir,
      knownDirs: [],
      htmlDir,
      imageFuzzer: new PlantedFuzzer(),
      shrinkImages: false,
      now: () => 0,
    });
    expect(summary.findings).toHaveLength(1);
    const finding = summary.findings[0]!;
    expect(finding).toMatchObject({ kind: 'malformed-image', isNew: true, html: expect.stringMatching(/\.html$/) });
    const [stored] = await loadCorpus(corpusDir);
    expect(stored?.case.kind).toBe('malformed-image');
    if (stored?.case.kind !== 'malformed-image') return;
    expect(finding.html).toBe(join(htmlDir, `${stored.id}.html`));
    const layout = imageLayout(bufferReader(await caseImage({ ...stored, case: stored.case })));

    const page = await session.open(await readFile(finding.html!, 'utf8'), 'fuzz-image-finding');
    await page.screenshot({ path: join(screenshots, 'fuzz-image-finding.png'), fullPage: true });
    expect(await page.locator('#divergence').textContent()).toBe(`assertion: AssertionError: ${planted}`);
    const notes = (await page.locator('.notes').textContent()) ?? '';
    expect(notes).toContain(`ours: refuses (AssertionError: ${planted})`);
    expect(notes).toMatch(/QEMU: info (ok|fails)/);
    for (const m of stored.case.mutations) expect(notes).toContain(`mutation: ${JSON.stringify(m)}`);
    expect(notes).toContain(`replay: qcow2-verify replay ${stored.jsonPath}`);
    // The grid is the mutant's picture, as map --output=html draws it (one cell per cluster at this size).
    const cells = page.locator('#grid .cell');
    expect(await cells.count()).toBe(layout.clusters.count);
    for (let i = 0; i < layout.clusters.count; i++) {
      expect(await cells.nth(i).getAttribute('data-role'), `cluster ${i}`).toBe(primaryRole(layout, i));
    }
  });
});
