// Swarm testing (style.md §10, TigerBeetle's random_enum_weights): each sequence
// draws its own weight per command kind, and some kinds are switched off
// entirely, so that one sequence is all snapshots and reverts while another
// never discards and grows the file until the refcount table must grow.
import fc from 'fast-check';
import { isChainOpKind, opKinds, type ChainOpKind, type OpKind } from '../../model/index.js';

/** Backing-chain ops are not in the swarm: they are spliced into a sequence on their own (sequence.ts), so the swarm draws what it drew before chains. */
export type CommandKind = Exclude<OpKind, ChainOpKind> | 'read';
export const commandKinds: readonly CommandKind[] = [...opKinds.filter((k): k is Exclude<OpKind, ChainOpKind> => !isChainOpKind(k)), 'read'];

export type SwarmWeights = Readonly<Record<CommandKind, number>>;

/**
 * Base weight of each kind before the swarm scales it: guest writes dominate
 * (they build the state every other op needs), snapshots come often enough that
 * several are alive at once, reopen and flush are rare.
 */
export const baseWeights: SwarmWeights = {
  write: 6,
  writeCompressed: 2,
  writeZeroes: 3,
  discard: 3,
  resize: 1,
  snapshotCreate: 2,
  snapshotRevert: 1,
  snapshotDelete: 1,
  flush: 1,
  reopen: 1,
  read: 3,
};

export interface SwarmConstraints {
  /** Kinds that are never switched off. Default ['write'] (a sequence needs something to check). */
  readonly alwaysOn?: readonly CommandKind[];
  /** Kinds that are never drawn. Default none. */
  readonly off?: readonly CommandKind[];
  /** Largest factor applied to a kind's base weight. Default 4. */
  readonly weightMax?: number;
  /** Draw every kind on (weights still vary). Used by coverage tests. Default false. */
  readonly allOn?: boolean;
}

export function qualifySwarmConstraints(c: SwarmConstraints = {}): Required<SwarmConstraints> {
  const q = { alwaysOn: c.alwaysOn ?? ['write'], off: c.off ?? [], weightMax: c.weightMax ?? 4, allOn: c.allOn ?? false };
  if (!Number.isSafeInteger(q.weightMax) || q.weightMax < 1) throw new RangeError(`weightMax must be >= 1, got ${q.weightMax}`);
  const clash = q.alwaysOn.find((k) => q.off.includes(k));
  if (clash !== undefined) throw new RangeError(`command kind ${clash} is both alwaysOn and off`);
  if (q.alwaysOn.length === 0 && commandKinds.every((k) => q.off.includes(k))) throw new RangeError('every command kind is off');
  return q;
}

/** One weight per kind (base weight × 1 … weightMax); 0 = the kind does not occur in this sequence. About one kind in four is off. */
export function swarmWeights(constraints: SwarmConstraints = {}): fc.Arbitrary<SwarmWeights> {
  const c = qualifySwarmConstraints(constraints);
  const weight = (kind: CommandKind): fc.Arbitrary<number> => {
    const on = fc.integer({ min: 1, max: c.weightMax }).map((f) => f * baseWeights[kind]);
    if (c.off.includes(kind)) return fc.constant(0);
    if (c.allOn || c.alwaysOn.includes(kind)) return on;
    return fc.oneof({ arbitrary: on, weight: 3 }, { arbitrary: fc.constant(0), weight: 1 });
  };
  const record = Object.fromEntries(commandKinds.map((k) => [k, weight(k)])) as Record<CommandKind, fc.Arbitrary<number>>;
  return fc.record(record).map((w) => {
    // never an all-off swarm: fall back to writes
    if (commandKinds.every((k) => w[k] === 0)) return { ...w, write: baseWeights.write };
    return w;
  });
}

/** `write=7 discard=0 …`, for reports. */
export function formatSwarm(w: SwarmWeights): string {
  return commandKinds.map((k) => `${k}=${w[k]}`).join(' ');
}
