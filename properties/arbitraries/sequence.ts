// One sequence = the image options, the swarm weights drawn for it, and the
// commands. Options and weights are the chain's source (not shrunk); shrinking
// removes and simplifies commands.
import fc from 'fast-check';
import type { ImageOptions } from '../../model/index.js';
import { chainCommandArbitrary, commandArbitrary, type ModelBox } from '../commands/index.js';
import { ResizeCommand } from '../commands/resize.js';
import { snapshotCreateCommand } from '../commands/snapshot-create.js';
import { snapshotDeleteCommand } from '../commands/snapshot-delete.js';
import { snapshotRevertCommand } from '../commands/snapshot-revert.js';
import type { RunContext } from '../context.js';
import { imageOptions, type ImageOptionsConstraints } from './image-options.js';
import { faultCommands } from '../faults/fault-commands.js';
import { commandKinds, swarmWeights, type CommandKind, type SwarmConstraints, type SwarmWeights } from './swarm.js';

export type SequenceCommand = fc.AsyncCommand<ModelBox, RunContext, boolean>;

export interface Sequence {
  readonly options: ImageOptions;
  readonly swarm: SwarmWeights;
  readonly commands: Iterable<SequenceCommand>;
}

export interface SequenceConstraints {
  readonly image?: ImageOptionsConstraints;
  readonly swarm?: SwarmConstraints;
  /** Longest sequence, not counting the chain commands spliced in. Default 40. */
  readonly commandsCountMax?: number;
  /** Draw crashes and I/O errors too (properties/faults/; only a fault-injecting driver runs them). Default false. */
  readonly faults?: boolean;
  /**
   * Half of the sequences get backing-chain commands (createOverlay, rebase,
   * commit: at most chainCommandsCountMax) spliced in at drawn places. Drawn
   * after everything else, so that a sequence without them is exactly what the
   * same seed drew before chains. Default false.
   */
  readonly chains?: boolean;
}

/** Most chain commands spliced into one sequence. */
export const chainCommandsCountMax = 8;

/**
 * Chain commands go only into sequences whose image has refcounts of at least
 * this width: with narrower ones snapshots overflow, where QEMU 7.2's known
 * leaks (corpus/) would end most chain sequences before they reach a chain,
 * and the sequences that find those leaks stay as they were drawn before chains.
 */
export const chainRefcountBitsMin = 16;

export function qualifySequenceConstraints(c: SequenceConstraints = {}): Required<SequenceConstraints> {
  const commandsCountMax = c.commandsCountMax ?? 40;
  if (!Number.isSafeInteger(commandsCountMax) || commandsCountMax < 1) {
    throw new RangeError(`commandsCountMax must be a positive integer, got ${commandsCountMax}`);
  }
  return { image: c.image ?? {}, swarm: c.swarm ?? {}, commandsCountMax, faults: c.faults ?? false, chains: c.chains ?? false };
}

/**
 * The commands as a plain array rather than fc.commands: fc.commands shrinks by
 * which commands ran, so replaying its path needs an extra replayPath token;
 * an array shrinks the same way (dropping and simplifying commands) from the
 * seed and path alone, which is all a replay line should need.
 * noBias: fast-check's small-first bias would make early sequences a handful of
 * commands; lengths are uniform up to the maximum instead.
 */
/** What a sequence draws besides the swarm's kinds. */
interface CommandsExtras {
  /** Further weighted commands (fault steps). */
  readonly extra?: readonly { readonly arbitrary: fc.Arbitrary<SequenceCommand>; readonly weight: number }[];
  /** Splice backing-chain commands into half of the sequences. */
  readonly chains?: boolean;
  /** Kinds never drawn, not even by a corner (the constraints' `swarm.off`). */
  readonly off?: readonly CommandKind[];
}

export function commandsFor(options: ImageOptions, swarm: SwarmWeights, commandsCountMax: number, extras: CommandsExtras = {}): fc.Arbitrary<Iterable<SequenceCommand>> {
  const { extra = [], chains = false, off = [] } = extras;
  const base = swarmCommandsFor(options, swarm, commandsCountMax, extra, off);
  if (!chains || options.refcountBits < chainRefcountBitsMin) return base;
  // fc.option shrinks to "no chain" first, and the splice to fewer commands
  const splice = fc.option(
    fc.array(fc.tuple(chainCommandArbitrary(), fc.nat()), { minLength: 1, maxLength: chainCommandsCountMax }),
    { nil: undefined, freq: 2 },
  );
  return fc.tuple(base, splice).map(([commands, chain]) => {
    if (chain === undefined) return commands;
    const out = [...commands];
    const places = chain.map(([, place]) => place % (out.length + 1)).sort((a, b) => a - b);
    for (let i = chain.length - 1; i >= 0; i--) out.splice(places[i]!, 0, chain[i]![0]);
    return out;
  });
}

function swarmCommandsFor(
  options: ImageOptions,
  swarm: SwarmWeights,
  commandsCountMax: number,
  extra: readonly { readonly arbitrary: fc.Arbitrary<SequenceCommand>; readonly weight: number }[],
  off: readonly CommandKind[],
): fc.Arbitrary<SequenceCommand[]> {
  const weighted = [
    ...commandKinds.filter((k) => swarm[k] > 0).map((k) => ({ arbitrary: commandArbitrary(k), weight: swarm[k] })),
    ...extra,
  ];
  const drawn = (maxLength: number) => fc.noBias(fc.array(fc.oneof(...weighted), { maxLength, size: 'max' }));
  if (!l1ClusterCornerReachable(options) || commandsCountMax < l1ClusterCornerLength) return drawn(commandsCountMax);
  // fc.option shrinks to "no corner" first, and each of its commands to none, so
  // a counterexample keeps only the corner commands it needs.
  return fc
    .tuple(drawn(commandsCountMax - l1ClusterCornerLength), fc.option(l1ClusterCorner(), { nil: undefined, freq: 3 }))
    .map(([commands, corner]) => (corner === undefined ? commands : spliceCorner(commands, corner, off)));
}

/** Commands of the L1-cluster corner: snapshot, grow past an L1 cluster's reach, revert or delete. */
const l1ClusterCornerLength = 3;

interface L1ClusterCorner {
  /** In order, each with its kind; undefined once shrinking has dropped one. */
  readonly commands: readonly ({ readonly kind: CommandKind; readonly command: SequenceCommand } | undefined)[];
  /** Where each command goes in the drawn list (taken modulo its length + 1, then sorted). */
  readonly places: readonly number[];
}

/**
 * Only images whose L1 table can outgrow a cluster under resizeSizeMax (512 B
 * clusters: one L1 cluster reaches 2 MiB) and that may resize with snapshots
 * alive (version 3; QEMU refuses to resize a version 2 image with snapshots).
 */
function l1ClusterCornerReachable(options: ImageOptions): boolean {
  return options.version === 3 && options.clusterBits === 9;
}

/**
 * Growing the image across a cluster of the L1 table while snapshots are
 * alive (the table moves; the snapshots keep their copies of the old, shorter
 * L1), then reverting to or deleting a snapshot. Random commands rarely line
 * up this way, so two thirds of the sequences that can reach it have these three
 * commands spliced in, in order, at drawn places.
 */
function l1ClusterCorner(): fc.Arbitrary<L1ClusterCorner> {
  // each command is nearly always there when drawn, but can shrink away
  const droppable = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined, freq: 1000 });
  // tagging maps values only: the same seed draws the same corner as before
  const tagged = (kind: CommandKind, arbitrary: fc.Arbitrary<SequenceCommand>) => arbitrary.map((command) => ({ kind, command }));
  return fc.record({
    commands: fc.tuple(
      droppable(tagged('snapshotCreate', snapshotCreateCommand())),
      droppable(tagged('resize', fc.nat().map((amount) => new ResizeCommand('grow-l1-cluster', amount)))),
      droppable(fc.oneof(tagged('snapshotRevert', snapshotRevertCommand()), tagged('snapshotDelete', snapshotDeleteCommand()))),
    ),
    places: fc.tuple(fc.nat(), fc.nat(), fc.nat()),
  });
}

/**
 * Splices the corner's commands in, also where this sequence's swarm drew
 * their kinds off (that is what makes the corner common), but never a kind
 * the constraints switch off (`swarm.off`: what an implementation does not
 * declare, or a caller excludes).
 */
function spliceCorner(drawn: readonly SequenceCommand[], corner: L1ClusterCorner, off: readonly CommandKind[]): SequenceCommand[] {
  const out = [...drawn];
  const places = corner.places.map((p) => p % (drawn.length + 1)).sort((a, b) => a - b);
  // from the last place back, so the earlier places stay where they were drawn
  for (let i = corner.commands.length - 1; i >= 0; i--) {
    const c = corner.commands[i];
    if (c !== undefined && !off.includes(c.kind)) out.splice(places[i]!, 0, c.command);
  }
  return out;
}

export function sequence(constraints: SequenceConstraints = {}): fc.Arbitrary<Sequence> {
  const c = qualifySequenceConstraints(constraints);
  // The source does not shrink: a simpler option regenerates a different command
  // list, which nearly always passes and only burns the shrink budget.
  return fc
    .noShrink(fc.record({ options: imageOptions(c.image), swarm: swarmWeights(c.swarm) }))
    .chain(({ options, swarm }) =>
      commandsFor(options, swarm, c.commandsCountMax, { extra: c.faults ? faultCommands() : [], chains: c.chains, off: c.swarm.off ?? [] }).map((commands) => ({ options, swarm, commands })),
    );
}
