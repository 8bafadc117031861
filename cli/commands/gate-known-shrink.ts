// A known divergence that resizes the disk, seen by a later operation. QEMU
// 7.2 sets the disk to the snapshot's size on a snapshot revert it refuses,
// shrinking it or growing it (corpus
// qemu-structure-structure-snapshotRevert-3a2e18bdb21b7b34.json: the structure
// check sees the virtual size at once). Other properties see it only when a
// later step touches the bytes past the shrunk end: a write-zeroes there
// answers EIO (an outcome fault named after that write-zeroes, as in gate
// --impl qemu --seed 12's handoff), a read finds the disk too short (a data
// fault); grown, an operation past the model's end succeeds (gate --impl qemu
// --seed 12's handoff, a discard). Their identities are not the case's, so the
// prefix through the refusal is replayed under the case's property: when it
// shows a resize, and the later failure is about the bytes between the two
// ends, the failure is that known divergence.
import { bufferReader, decodeImage, initialState, step as modelStep, type ImageOptions, type Op } from '../../model/index.js';
import { faultKind, operationOutcomes } from '../../corpus/case/fault.js';
import { driverFactories, isBuiltinImplName, isPropertyName, replayOps, type RunResult, type Step } from '../../properties/index.js';
import { matchKnownDivergence, type KnownDivergence, type KnownDivergences } from './gate-divergences.js';

/** The structure check's finding when the disk has another size (structureShape of `image: expected virtual size 2097152, found virtual size 1048576`). */
export const diskSizeShape = 'image: expected virtual size #, found virtual size #';

/** The sizes a structure violation expected and found the disk at, from `expected virtual size N, found virtual size M`, or undefined. */
function virtualSizes(message: string): { readonly expected: number; readonly found: number } | undefined {
  const m = /expected virtual size (\d+), found virtual size (\d+)\b/.exec(message);
  return m === null ? undefined : { expected: Number(m[1]), found: Number(m[2]) };
}

/**
 * Whether the failure is about the bytes between the model's size and the
 * size QEMU's refused revert left (`sizes`). Shrunk: an operation whose range
 * ends past the shrunk end that QEMU refused (out-of-range, EIO) while the
 * model expects it to succeed, or a read that found a guest disk of the
 * shrunk size. Grown (the snapshot was larger): an operation ending inside
 * the grown part that QEMU did while the model refuses it as out-of-range.
 */
function pastChangedEnd(result: Extract<RunResult, { status: 'property-failed' }>, sizes: { readonly expected: number; readonly found: number }): boolean {
  if (result.failure.kind !== 'violation') return false;
  const message = result.failure.message;
  const last = result.counterexample.steps.at(-1);
  const end = last !== undefined && 'offset' in last && 'length' in last ? last.offset + last.length : undefined;
  switch (faultKind({ check: result.failure.check, message })) {
    case 'outcome':
      if (end === undefined) return false;
      if (sizes.found < sizes.expected) return end > sizes.found && /answered (out-of-range|io)\b.*the model expects ok$/.test(message);
      return end > sizes.expected && end <= sizes.found && /answered ok, the model expects out-of-range\b/.test(message);
    case 'data':
      return sizes.found < sizes.expected && new RegExp(`needs a guest disk of \\d+ bytes, the implementation's has ${sizes.found} `).test(message);
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
 * finding and the failure is about the bytes between the size the model
 * expects and the size the prefix found (pastChangedEnd). Costs one replay per such case, only for a failure no
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
    // the case's own check sees the resize, unless an earlier known divergence (a refused create's leak) stops it first
    const sizes =
      prefix.status === 'property-failed' && matchKnownDivergence(prefix, known) === d
        ? virtualSizes(prefix.failure.message)
        : await sizesAfter(result.impl, options, steps.slice(0, last + 1));
    if (sizes !== undefined && sizes.found !== sizes.expected && pastChangedEnd(result, sizes)) return d;
  }
  return undefined;
}

/**
 * The virtual size the model expects after `steps` and the one the
 * implementation's image header records, with the steps applied directly (no
 * checks); undefined for an implementation with no built-in driver or steps
 * that are not plain ops.
 */
async function sizesAfter(impl: string, options: ImageOptions, steps: readonly Step[]): Promise<{ readonly expected: number; readonly found: number } | undefined> {
  if (!isBuiltinImplName(impl)) return undefined;
  const ops = steps.filter((s) => s.kind !== 'read');
  if (ops.some((s) => s.kind === 'crash' || s.kind === 'ioError')) return undefined;
  const driver = await driverFactories[impl](options);
  try {
    let state = initialState(options);
    for (const op of ops as Op[]) {
      state = modelStep(state, op).state;
      await driver.apply(op);
    }
    return { expected: state.options.virtualSize, found: Number(decodeImage(bufferReader(await driver.imageBytes())).header.size) };
  } finally {
    await driver.close();
  }
}
