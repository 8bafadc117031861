// Mutation testing of the engine (impl/) with Stryker 9 and the vitest runner.
// `npm run mutation` runs the engine's allocation, refcount, L2, data-path and
// snapshot code; `npx stryker run --mutate impl/refcount.ts` runs one file and
// `npx stryker run --mutate 'impl/**/*.ts'` all of impl/ (much longer).
// Scores, run times and the surviving mutants worth knowing about are in
// docs/mutation.md.
import { PluginKind, declareValuePlugin } from '@stryker-mutator/api/plugin';

/** Functions whose last argument is only the text of a broken-invariant report. */
const assertionFunctions = new Set(['assert', 'assertNever']);

/**
 * Assertion messages are not behaviour: they are only seen when the engine has a
 * bug, and no test can tell one wording from another. Their conditions stay
 * mutated (test/impl/ calls the codecs with broken input to kill those).
 */
const assertionMessages = {
  shouldIgnore(path) {
    const call = path.parentPath;
    if (!call?.isCallExpression() || !call.get('callee').isIdentifier()) return undefined;
    if (!assertionFunctions.has(call.node.callee.name)) return undefined;
    const args = call.node.arguments;
    return args.length > 1 && path.node === args[args.length - 1] ? 'assertion message text' : undefined;
  },
};

export const strykerPlugins = [declareValuePlugin(PluginKind.Ignore, 'assertion-messages', assertionMessages)];

/** The engine's allocation, refcount, L2, data-path and snapshot code (the 85 % target). */
export const engineCore = [
  'impl/refcount.ts',
  'impl/refcount-area.ts',
  'impl/cluster-map.ts',
  'impl/data-path.ts',
  'impl/zero-discard.ts',
  'impl/snapshot.ts',
  'impl/format/l2-entry.ts',
  'impl/format/refcount-block.ts',
];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  mutate: engineCore,
  appendPlugins: ['./stryker.config.mjs'],
  ignorers: ['assertion-messages'],
  // Only the tests that cover a mutant run against it; the first failure stops it.
  coverageAnalysis: 'perTest',
  // The machine has 2 cores and is shared with other work.
  concurrency: 2,
  // A later run re-tests only mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  // A mutant that TypeScript would reject is not interesting; strip type checks.
  disableTypeChecks: 'impl/**/*.ts',
  // An endless loop (a mutated bound) ends at the net time of its tests x 2 + 10 s.
  // Tighter limits made a loaded machine report slow runs as timeouts (which
  // count as detected) on mutants that cannot loop.
  timeoutMS: 10_000,
  timeoutFactor: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 85, low: 70, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
