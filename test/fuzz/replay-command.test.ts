import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { withDir } from 'tmp-promise';
import { runReplay } from '../../cli/commands/replay.js';
import { defaultCorpusDir, loadCorpus } from '../../corpus/store.js';
import { CliError } from '../../cli/fatal.js';

const cases = await loadCorpus(defaultCorpusDir());
const staleTail = cases.find((s) => s.case.signature === 'readsAndOutcomes/read/read' && s.case.status === 'known-qemu-divergence');
// QEMU refuses the compressed write (overlap check), marks the image corrupt and closes it
const compressedOverlap = cases.find((s) => s.case.signature === 'structure/outcome/writeCompressed' && s.case.status === 'known-qemu-divergence');

describe('qcow2-verify replay', () => {
  it('exits 1 while a case fails and traces the first divergence per cluster', async () => {
    expect(staleTail).toBeDefined();
    const lines: string[] = [];
    expect(await runReplay(staleTail!.jsonPath, { trace: true }, (l) => lines.push(l))).toBe(1);
    const text = lines.join('\n');
    expect(text).toContain('#3 truncate 0x20000');
    // After the grow, QEMU still holds the stale 0xab bytes where the model has zeros.
    expect(text).toMatch(/cluster 1 @0x10000: model normal #([0-9a-f]{8}) \| impl normal #(?!\1)[0-9a-f]{8} {2}<>\n {4}\^ first divergence: guest cluster 1 differs/);
    expect(text).toContain('still fails as recorded (qemu, data/resize:ok) as expected: a known QEMU divergence');
    expect(text).toMatch(/^ {2}on QEMU: sh \S+\/repro\.sh$/m);
  });

  it('traces up to an implementation that can no longer read, then replays the case as recorded', async () => {
    expect(compressedOverlap).toBeDefined();
    const lines: string[] = [];
    expect(await runReplay(compressedOverlap!.jsonPath, { trace: true }, (l) => lines.push(l))).toBe(1);
    const text = lines.join('\n');
    expect(text).toMatch(/outcome: model ok \| impl compressed-overwrite\n {4}\^ first divergence: outcomes differ\n {4}cluster 0 @0x0: model compressed #[0-9a-f]{8} \| impl read failed: .*No medium found/);
    expect(text).toContain('still fails as recorded (qemu, outcome/writeCompressed:ok) as expected: a known QEMU divergence');
  });

  it('traces subcluster bitmaps on an extended-L2 image: a divergence in them alone is one', async () => {
    await withDir(
      async ({ path: dir }) => {
        // the canary drops the third write: zeros into subcluster 1 of cluster 0, which reads as zeros either way
        const c = {
          format: 1,
          kind: 'property-failure',
          status: 'open',
          description: 'a write the canary drops changes only the subcluster allocation bitmap',
          implementation: 'ts',
          property: 'structure',
          signature: 'structure/structure/write',
          message: '[structure] cluster 0 bitmap',
          seed: 1,
          path: '0',
          found: { tool: 'qcow2-verify', qemu: '7.2', date: '2026-11-30', command: 'a test' },
          options: { version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20, extendedL2: true },
          ops: [
            { kind: 'write', offset: 0, length: 512, pattern: 1 },
            { kind: 'write', offset: 65536, length: 512, pattern: 2 },
            { kind: 'write', offset: 2048, length: 2048, pattern: 0 },
          ],
        };
        const file = join(dir, 'bitmap.json');
        await writeFile(file, JSON.stringify(c));
        const lines: string[] = [];
        await runReplay(file, { trace: true, impl: 'canary' }, (l) => lines.push(l));
        const text = lines.join('\n');
        expect(text).toMatch(/#1 write .*\n.*\n {4}cluster 0 @0x0: model normal \[alloc 0x1 zero 0x0\] #([0-9a-f]{8}) \| impl normal \[alloc 0x1 zero 0x0\] #\1\n/);
        expect(text).toMatch(/cluster 0 @0x0: model normal \[alloc 0x3 zero 0x0\] #([0-9a-f]{8}) \| impl normal \[alloc 0x1 zero 0x0\] #\1 {2}<>\n {4}\^ first divergence: guest cluster 0 differs/);
      },
      { unsafeCleanup: true },
    );
  });

  it('exits 3 when the case fails, but not as recorded', async () => {
    await withDir(
      async ({ path: dir }) => {
        // The stale-tail case recorded as a leak: QEMU still fails on it, with wrong data instead.
        const text = (await readFile(staleTail!.jsonPath, 'utf8')).replace('"signature": "readsAndOutcomes/read/read"', '"signature": "readsAndOutcomes/check-image/read"');
        const file = join(dir, 'relabelled.json');
        await writeFile(file, text.replace(/"message": "[^"]*"/, '"message": "[check-image] the checker says leaks (0 corruptions, 1 leaks, 0 check errors)"'));
        const lines: string[] = [];
        expect(await runReplay(file, { trace: false }, (l) => lines.push(l))).toBe(3);
        expect(lines.at(-1)).toMatch(/^fails differently \(qemu\): data\/resize:ok \(readsAndOutcomes\/read\/read\) instead of leak\/resize:ok \(readsAndOutcomes\/check-image\/read\): \[read\] read 0x10200 0x200/);
      },
      { unsafeCleanup: true },
    );
  });

  it('exits 0 once the case passes (our engine on a known QEMU divergence)', async () => {
    const lines: string[] = [];
    expect(await runReplay(staleTail!.jsonPath, { trace: false, impl: 'ts' }, (l) => lines.push(l))).toBe(0);
    expect(lines.at(-1)).toBe('passes (ts)');
  });

  it('refuses a broken case file with exit 2', async () => {
    await withDir(
      async ({ path: dir }) => {
        const file = join(dir, 'bad.json');
        await writeFile(file, JSON.stringify({ format: 1, kind: 'property-failure' }));
        const error = await runReplay(file, { trace: false }, () => undefined).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CliError);
        expect((error as CliError).exitCode).toBe(2);
        expect((error as CliError).message).toMatch(/bad\.json: field implementation is missing/);
      },
      { unsafeCleanup: true },
    );
  });
});
