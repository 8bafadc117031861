// A known divergence that shrinks the disk, seen by a later operation. QEMU
// 7.2 shrinks the disk on a snapshot revert it refuses (corpus
// qemu-structure-structure-snapshotRevert-3a2e18bdb21b7b34.json: the structure
// check sees the virtual size at once). Other properties see it only when a
// later step touches the bytes past the shrunk end: a write-zeroes there
// answers EIO (an outcome fault named after that write-zeroes, as in gate
// --impl qemu --seed 12's handoff), a read finds the disk too short (a data
// fault). Their identities are not the case's, so the prefix through the
// refusal is replayed under the case's property: when it shows the same
// shrink, and the later failure is about bytes past the shrunk end, the
// failure is that known divergence.
import { faultKind, operationOutcomes } from '../../corpus/case/fault.js';
import { isPropertyName, replayOps, type RunResult } from '../../properties/index.js';
import { matchKnownDivergence, type KnownDivergence, type KnownDivergences } from './gate-divergences.js';

/** The structure check's finding when the disk has another size (structureShape of `image: expected virtual size 2097152, found virtual size 1048576`). */
export const diskSizeShape = 'image: expected virtual size #, found virtual size #';

/** The size a structure violation found the disk at, from `found virtual size N`, or undefined. */
function foundVirtualSize(message: string): number | undefined {
  const m = /found virtual size (\d+)\b/.exec(message);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Whether the failure is about the bytes past `size`: an operation whose
 * range ends past it that QEMU refused (out-of-range, EIO) while the model
 * expects it to succeed, or a read that found a guest disk of `size` bytes.
 */
function pastShrunkEnd(result: Extract<RunResult, { status: 'property-failed' }>, size: number): boolean {
  if (result.failure.kind !== 'violation') return false;
  const message = result.failure.message;
  switch (faultKind({ check: result.failure.check, message })) {
    case 'outcome': {
      const last = result.counterexample.steps.at(-1);
      if (last === undefined || !('offset' in last) || !('length' in last)) return false;
      return last.offset + last.length > size && /answered (out-of-range|io)\b.*the model expects ok$/.test(message);
    }
    case 'data':
      return new RegExp(`needs a guest disk of \\d+ bytes, the implementation's has ${size} `).test(message);
    default:
      return false;
  }
}

/**
 * The known disk-shrinking divergence (a structure case whose finding is the
 * virtual size, diskSizeShape) that a later outcome or data failure is, or
 * undefined. For each such case whose causing operation, with its outcome
 * (`snapshotRevert:refcount-overflow`), ran in the sequence, the prefix
 * through its last run is replayed under the case's property; the failure
 * is that divergence when the prefix fails with the case's identity and
 * finding and the failure is about bytes past the size the prefix found
 * (pastShrunkEnd). Costs one replay per such case, only for a failure no
 * case matches directly.
 */
export async function attributeKnownShrink(result: RunResult, known: KnownDivergences): Promise<KnownDivergence | undefined> {
  if (result.status !== 'property-failed' || result.failure.kind !== 'violation') return undefined;
  const kind = faultKind({ check: result.failure.check, message: result.failure.message });
  if (kind !== 'outcome' && kind !== 'data') return undefined;
  const { options, steps } = result.counterexample;
  const outcomes = operationOutcomes(options, steps);
  for (const d of [...known.values()].flat()) {
    if (d.structureShape !== diskSizeShape || !isPropertyName(d.property)) continue;
    const cause = d.identity.slice('structure/'.length);
    const last = outcomes.filter((o) => o.outcome === cause).at(-1)?.index;
    if (last === undefined) continue;
    const prefix = await replayOps({ impl: result.impl, options, ops: steps.slice(0, last + 1), properties: [d.property] });
    if (prefix.status !== 'property-failed' || matchKnownDivergence(prefix, known) !== d) continue;
    const size = foundVirtualSize(prefix.failure.message);
    if (size !== undefined && pastShrunkEnd(result, size)) return d;
  }
  return undefined;
}
