// The tests Stryker runs against each mutant of impl/ (npm run mutation).
// Everything here drives the engine in memory. The QEMU round-trip,
// crash-ordering, smoke and map/info tests spawn qemu-img for every case and
// cost seconds per mutant; docs/mutation.md says what they would add. npm test
// still runs them all.
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Stryker stops a mutant at its first failing test, so the cheap, sharp tests go
// first and the property runs (seconds each) after them. Vitest's default order
// is slowest first, the worst order for this. The tests written against
// surviving mutants (docs/mutation.md) run last: a mutant they kill survived
// everything before them, so the report's killedBy gives the scores before and
// after they were added from one run.
const writtenAgainstSurvivors = 'test/impl/format/l2-entry.test.ts';
const order = [
  'test/impl/format/codecs.test.ts',
  'test/impl/cache/',
  'test/impl/failures.test.ts',
  'test/impl/hostile-headers.test.ts',
  'test/impl/engine-vs-model.test.ts',
  'test/impl/engine-vs-model.property.test.ts',
  'test/properties/properties.test.ts',
  writtenAgainstSurvivors,
  'test/impl/format/refcount-block.test.ts',
  'test/impl/shrink-and-reuse.test.ts',
  'test/impl/compressed-clusters.test.ts',
  'test/impl/crash-barriers.test.ts',
  'test/impl/refcount-area.test.ts',
  'test/impl/write-zeroes-partial.test.ts',
  'test/impl/snapshot-edges.test.ts',
  'test/impl/refcount-edges.test.ts',
  'test/impl/l1-edges.test.ts',
  'test/impl/data-path-edges.test.ts',
];

function rank(spec: TestSpecification): number {
  const at = order.findIndex((prefix) => spec.moduleId.includes(`/${prefix}`));
  return at < 0 ? order.indexOf(writtenAgainstSurvivors) - 0.5 : at;
}

class CheapFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}

export default defineConfig({
  test: {
    include: ['test/impl/**/*.test.ts', 'test/properties/properties.test.ts'],
    exclude: [
      'test/impl/qemu-roundtrip.test.ts',
      'test/impl/crash-ordering.test.ts',
      'test/impl/smoke.test.ts',
      'test/impl/map-info.test.ts',
    ],
    setupFiles: ['test/setup.ts', 'test/properties/mutation-setup.ts'],
    // properties.test.ts then runs only the properties that need no QEMU.
    env: { QCOW2_VERIFY_IN_MEMORY_ONLY: '1' },
    sequence: { sequencer: CheapFirst },
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
