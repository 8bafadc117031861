// A `--seed S --path P` printed by an older version of the tool names a shrunk
// counterexample through the generators of that version: once they change, the
// same seed draws other sequences and fast-check cannot walk the path. The
// corpus keeps the sequence itself with the seed and path it was found at, so
// the gate replays that saved sequence instead, and says so; a path that
// neither walks nor was saved is a clear harness error naming what to do.
import { loadCorpus, type StoredCase } from '../../corpus/store.js';
import { replayOps } from '../../properties/index.js';
import type { Batch } from './gate-batch.js';
import type { BatchPool } from './gate-pool.js';

/** fast-check's message when a path leads past the values its shrinker offers (PathWalker). */
const unwalkablePath = /Unable to replay, got wrong path/;

/** The property-failure case of `impl` and `property` recorded at exactly this seed and path, if any. */
export function recordedCase(cases: readonly StoredCase[], batch: Batch): StoredCase | undefined {
  return cases.find(
    ({ case: c }) =>
      c.kind === 'property-failure' && c.implementation === batch.impl && c.property === batch.property && c.seed === batch.seed && c.path === batch.path,
  );
}

/**
 * Wraps `inner` for a gate given `--path`: a batch whose path fast-check
 * cannot walk is replayed from the corpus case recorded at the same
 * implementation, property, seed and path (searched in `corpusDirs`, in
 * order); `note` gets one line saying which case replaced the path. Without
 * such a case the harness error stays, with a message that says why and what
 * to run instead.
 */
export function recordedPathPool(inner: BatchPool, corpusDirs: readonly string[], note: (line: string) => void): BatchPool {
  return {
    ...inner,
    async run(batch, onEvent) {
      // fast-check throws before the first run when it cannot walk the path
      const walked = await inner.run(batch, onEvent).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      if ('result' in walked) return walked.result;
      const message = walked.error instanceof Error ? walked.error.message : String(walked.error);
      if (batch.path === undefined || !unwalkablePath.test(message)) throw walked.error;
      const cases = (await Promise.all(corpusDirs.map((d) => loadCorpus(d)))).flat();
      const stored = recordedCase(cases, batch);
      if (stored === undefined || stored.case.kind !== 'property-failure') {
        throw new Error(
          `path ${batch.path} does not replay with this version's generators (it was printed by another version, or mistyped), ` +
          `and no corpus case was recorded at seed ${batch.seed} with that path: replay a saved case with \`qcow2-verify replay CASE\`, or run the gate without --path`,
        );
      }
      note(`path ${batch.path} does not replay with this version's generators; replaying the sequence recorded at that seed and path: ${stored.jsonPath}`);
      const c = stored.case;
      return replayOps({ impl: batch.impl, options: c.options, ops: c.ops, properties: [batch.property], replayHint: `qcow2-verify replay ${stored.jsonPath}` });
    },
  };
}
