// QEMU 7.2's stale tail, seen by another check. Growing a disk whose size
// ends inside a cluster re-exposes the bytes past the old end in that cluster
// (docs/semantics.md, resize; corpus qemu-readsAndOutcomes-read-resize-…: a
// read finds them, identity data/resize:ok). The structure check sees the same
// bytes in a cluster's data (`guest cluster 0: expected byte 109056 of the
// cluster = 0x0, found 0xd6`), after the grow or in a snapshot taken later,
// and then names whatever step came last (fuzz --impl qemu --seed 515:
// structure/write:ok). Such a failure is the known divergence when the byte
// lies in the stale window of an earlier grow and the prefix through that
// grow, replayed under the known case's property, shows the known stale data
// inside the same window.
import { faultKind, unalignedGrowths, type UnalignedGrowth } from '../../corpus/case/fault.js';
import { isPropertyName, replayOps, type RunResult } from '../../properties/index.js';
import { matchKnownDivergence, type KnownDivergence, type KnownDivergences } from './gate-divergences.js';

/** The identity of the known stale-tail cases: a read after the grow that exposed the bytes. */
const staleTailIdentity = 'data/resize:ok';

/**
 * The guest offset of a byte a failure says is not zero where the model
 * expects zero: a read's `guest offset 0x… reads [ab …], the model expects
 * [00 …]`, or a structure finding's `guest cluster N: expected byte B of the
 * cluster = 0x0, found 0x…` (any view: the active one or a snapshot's). Undefined for any other message.
 */
export function nonZeroWhereZeroExpected(message: string, clusterBits: number): number | undefined {
  const read = /guest offset 0x([0-9a-f]+) reads \[([0-9a-f]{2})[^\]]*\], the model expects \[00\b/.exec(message);
  if (read !== null) return read[2] === '00' ? undefined : parseInt(read[1] ?? '', 16);
  const cluster = /guest cluster (\d+): expected byte (\d+) of the cluster = 0x0, found 0x([0-9a-f]+)/.exec(message);
  if (cluster === null || cluster[3] === '0') return undefined;
  return Number(cluster[1]) * 2 ** clusterBits + Number(cluster[2]);
}

const inWindow = (g: UnalignedGrowth, offset: number): boolean => g.oldSize <= offset && offset < g.staleEnd;

/**
 * The known stale-tail divergence a data or structure failure is, or
 * undefined: the byte it names (nonZeroWhereZeroExpected) lies in the stale
 * window [old size, end of that cluster) of a grow earlier in the sequence,
 * and the prefix through the last such grow, replayed under a known
 * stale-tail case's property, fails as that case with its own non-zero byte
 * in the same window. Costs one replay per stale-tail case, only for such a
 * failure no case matches directly.
 */
export async function attributeKnownStaleTail(result: RunResult, known: KnownDivergences): Promise<KnownDivergence | undefined> {
  if (result.status !== 'property-failed' || result.failure.kind !== 'violation') return undefined;
  const kind = faultKind({ check: result.failure.check, message: result.failure.message });
  if (kind !== 'data' && kind !== 'structure') return undefined;
  const { options, steps } = result.counterexample;
  const offset = nonZeroWhereZeroExpected(result.failure.message, options.clusterBits);
  if (offset === undefined) return undefined;
  const growth = unalignedGrowths(options, steps)
    .filter((g) => inWindow(g, offset))
    .at(-1);
  if (growth === undefined) return undefined;
  for (const d of known.get(staleTailIdentity) ?? []) {
    if (!isPropertyName(d.property)) continue;
    const prefix = await replayOps({ impl: result.impl, options, ops: steps.slice(0, growth.index + 1), properties: [d.property] });
    if (prefix.status !== 'property-failed' || matchKnownDivergence(prefix, known)?.identity !== staleTailIdentity) continue;
    const seen = nonZeroWhereZeroExpected(prefix.failure.message, options.clusterBits);
    if (seen !== undefined && inWindow(growth, seen)) return d;
  }
  return undefined;
}
