// The package as another project gets it: `npm pack`, the tarball installed
// into a fresh project in a temp directory (`npm install --offline` from npm's
// cache, or with --prefer-offline the npm registry for what the cache lacks),
// then from there: all five entry points
// import, their type declarations check the example under tsc, and the
// example's own vitest/fast-check suite (examples/own-driver) runs its
// properties briefly against its own driver, including the check that it
// catches a driver that loses writes.
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { withTempDir } from '../../oracle/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const example = join(root, 'examples', 'own-driver');

/** The version of a package installed here, so the fresh project runs the example with what this suite is tested with. */
async function installedVersion(name: string): Promise<string> {
  return (JSON.parse(await readFile(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

const importAll = `
import assert from 'node:assert/strict';
import * as main from 'qcow2-verify';
import * as model from 'qcow2-verify/model';
import * as impl from 'qcow2-verify/impl';
import * as properties from 'qcow2-verify/properties';
import * as oracle from 'qcow2-verify/oracle';
assert.equal(typeof model.step, 'function');
assert.equal(typeof model.decodeImage, 'function');
assert.equal(typeof impl.Qcow2Image.create, 'function');
assert.equal(typeof properties.checkSequence, 'function');
assert.equal(typeof properties.sequence, 'function');
assert.equal(typeof oracle.qemuImgCheck, 'function');
// one module instance behind the main entry and the sub-entries
assert.equal(main.model.step, model.step);
assert.equal(main.checkSequence, properties.checkSequence);
assert.equal(main.oracle.qemuVersion, oracle.qemuVersion);
// only the entries are public
await assert.rejects(import('qcow2-verify/dist/impl/image.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
const state = model.initialState({ version: 3, clusterBits: 16, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 });
const { state: written } = model.step(state, { kind: 'write', offset: 0, length: 4096, pattern: 7 });
assert.equal(model.read(written, 0, 1)[0], 7);
console.log('five entry points imported');
`;

describe('the packed package in a fresh project', () => {
  it('imports all five entry points, type-checks the example against its declarations and runs its properties', { timeout: 900_000 }, async () => {
    const declarations = join(root, 'dist', 'index.d.ts');
    await stat(declarations).catch(() => {
      throw new Error(`${declarations} is missing: run \`npm run build\` first (npm test does)`);
    });
    await withTempDir(async (dir) => {
      // --ignore-scripts: dist/ is the build npm test made in its pretest; a rebuild here would rewrite files other tests load
      const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root });
      const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
      const paths = files.map((f) => f.path);
      for (const entry of ['index', 'model/index', 'impl/index', 'properties/index', 'oracle/index']) {
        expect(paths).toContain(`dist/${entry}.js`);
        expect(paths).toContain(`dist/${entry}.d.ts`);
      }
      expect(paths.some((p) => p.startsWith('test/'))).toBe(false);

      const project = join(dir, 'project');
      await cp(example, project, { recursive: true, filter: (src) => !src.includes('node_modules') });
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'fresh-project', private: true, type: 'module' }));
      const pins = await Promise.all(['vitest', 'fast-check', 'typescript', '@types/node'].map(async (name) => `${name}@${await installedVersion(name)}`));
      // offline when npm's cache has everything; else the registry for what it lacks (a fresh `npm ci` caches tarballs, not package metadata)
      const install = (mode: string) => execa('npm', ['install', mode, '--no-audit', '--no-fund', join(dir, filename), ...pins], { cwd: project, reject: false });
      let installed = await install('--offline');
      if (installed.exitCode !== 0 && /ENOTCACHED/.test(installed.stderr)) installed = await install('--prefer-offline');
      expect(installed.exitCode, installed.stderr).toBe(0);

      await writeFile(join(project, 'import-all.mjs'), importAll);
      expect((await execa('node', ['import-all.mjs'], { cwd: project })).stdout).toBe('five entry points imported');
      // the declarations type-check the example (strict, and the package's own .d.ts files too: skipLibCheck is off)
      await execa('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: project });
      // the example's seed follows this suite's (test/setup.ts), so QCOW2_VERIFY_SEED varies it reproducibly
      const env = { QCOW2_SEED: process.env.QCOW2_VERIFY_SEED ?? '20261125', QCOW2_RUNS: '3' };
      const suite = await execa('npx', ['vitest', 'run'], { cwd: project, env, reject: false });
      expect(suite.exitCode, suite.stdout + suite.stderr).toBe(0);
      expect(stripVTControlCharacters(suite.stdout)).toMatch(/Tests\s+3 passed \(3\)/);
      // the installed command works too, and names the QEMU it is judged against
      expect((await execa('npx', ['qcow2-verify', '--version'], { cwd: project })).stdout).toMatch(/^qcow2-verify version 0\.1\.0\nqemu-img version \d/);
    });
  });
});
