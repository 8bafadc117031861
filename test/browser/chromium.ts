// One headless Debian Chromium per test file, driven by playwright-core (no
// browser download: the system's /usr/bin/chromium, which scripts/ensure-chromium.mjs
// installs at `npm test` as ensure-qemu.mjs installs qemu-utils). A fresh
// profile directory per launch, every background service off, no network use.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const chromiumPath = '/usr/bin/chromium';

export interface BrowserSession {
  readonly context: BrowserContext;
  /** A fresh page with `html` loaded from a file:// URL (the way a user opens a report). */
  open(html: string, name: string): Promise<Page>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<BrowserSession> {
  const profile = await mkdtemp(join(tmpdir(), 'qcow2-verify-chromium-'));
  const pages = await mkdtemp(join(tmpdir(), 'qcow2-verify-pages-'));
  // The persistent-context launch is playwright's way to pass --user-data-dir: here a fresh, empty one.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async open(html, name) {
      const file = join(pages, `${name}.html`);
      await writeFile(file, html);
      const page = await context.newPage();
      // A self-contained page asks for nothing: any request but its own file fails the test.
      const requests: string[] = [];
      page.on('request', (r) => {
        if (r.url() !== `file://${file}`) requests.push(r.url());
      });
      await page.goto(`file://${file}`);
      if (requests.length > 0) throw new Error(`the page requested ${requests.join(', ')}`);
      return page;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
      await rm(pages, { recursive: true, force: true });
    },
  };
}
