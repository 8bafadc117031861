// One sequence = the image options, the swarm weights drawn for it, and the
// commands. Options and weights are the chain's source (not shrunk); shrinking
// removes and simplifies commands.
import fc from 'fast-check';
import type { ImageOptions } from '../../model/index.js';
import { commandArbitrary, type ModelBox } from '../commands/index.js';
import type { RunContext } from '../context.js';
import { imageOptions, type ImageOptionsConstraints } from './image-options.js';
import { commandKinds, swarmWeights, type SwarmConstraints, type SwarmWeights } from './swarm.js';

export type SequenceCommand = fc.AsyncCommand<ModelBox, RunContext, boolean>;

export interface Sequence {
  readonly options: ImageOptions;
  readonly swarm: SwarmWeights;
  readonly commands: Iterable<SequenceCommand>;
}

export interface SequenceConstraints {
  readonly image?: ImageOptionsConstraints;
  readonly swarm?: SwarmConstraints;
  /** Longest sequence. Default 40. */
  readonly commandsCountMax?: number;
}

export function qualifySequenceConstraints(c: SequenceConstraints = {}): Required<SequenceConstraints> {
  const commandsCountMax = c.commandsCountMax ?? 40;
  if (!Number.isSafeInteger(commandsCountMax) || commandsCountMax < 1) {
    throw new RangeError(`commandsCountMax must be a positive integer, got ${commandsCountMax}`);
  }
  return { image: c.image ?? {}, swarm: c.swarm ?? {}, commandsCountMax };
}

/**
 * The commands as a plain array rather than fc.commands: fc.commands shrinks by
 * which commands ran, so replaying its path needs an extra replayPath token;
 * an array shrinks the same way (dropping and simplifying commands) from the
 * seed and path alone, which is all a replay line should need.
 * noBias: fast-check's small-first bias would make early sequences a handful of
 * commands; lengths are uniform up to the maximum instead.
 */
export function commandsFor(swarm: SwarmWeights, commandsCountMax: number): fc.Arbitrary<Iterable<SequenceCommand>> {
  const weighted = commandKinds
    .filter((k) => swarm[k] > 0)
    .map((k) => ({ arbitrary: commandArbitrary(k), weight: swarm[k] }));
  return fc.noBias(fc.array(fc.oneof(...weighted), { maxLength: commandsCountMax, size: 'max' }));
}

/**
 * Refcount widths where compressed streams are left out: with 2, 4 or 8 bits
 * several streams can fill a host cluster's refcount, and whether a snapshot
 * then overflows depends on the packing, which the model leaves to the engine.
 * With 1 bit every stream has its cluster alone (qcow2_alloc_bytes), with 16 or
 * more no test sequence gets near the limit.
 */
const packingDependentRefcountBits: readonly number[] = [2, 4, 8];

function withoutUnpredictableKinds(options: ImageOptions, swarm: SwarmWeights): SwarmWeights {
  if (!packingDependentRefcountBits.includes(options.refcountBits) || swarm.writeCompressed === 0) return swarm;
  const pruned = { ...swarm, writeCompressed: 0 };
  return commandKinds.every((k) => pruned[k] === 0) ? { ...pruned, write: 1 } : pruned;
}

export function sequence(constraints: SequenceConstraints = {}): fc.Arbitrary<Sequence> {
  const c = qualifySequenceConstraints(constraints);
  // The source does not shrink: a simpler option regenerates a different command
  // list, which nearly always passes and only burns the shrink budget.
  return fc
    .noShrink(fc.record({ options: imageOptions(c.image), swarm: swarmWeights(c.swarm) }))
    .map(({ options, swarm }) => ({ options, swarm: withoutUnpredictableKinds(options, swarm) }))
    .chain(({ options, swarm }) => commandsFor(swarm, c.commandsCountMax).map((commands) => ({ options, swarm, commands })));
}
