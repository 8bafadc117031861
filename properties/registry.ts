// The registry of properties (style.md §14). Each is a list of checks run over
// random sequences; every property also compares each operation's outcome and
// every read step with the model.
import type { SequenceConstraints } from './arbitraries/sequence.js';
import type { Check } from './checks/check.js';
import { engineOutputsCheck } from './checks/engine-outputs.js';
import { qemuJudgesCheck } from './checks/qemu-judges.js';
import { readsCheck } from './checks/reads.js';
import { reopenCheck } from './checks/reopen.js';
import { spaceCheck } from './checks/space.js';
import { structureCheck } from './checks/structure.js';
import type { BuiltinImplName, DriverFactory, ImplName } from './driver.js';
import { createHandoffDriver } from './drivers/handoff.js';
import { createFaultDriver } from './faults/fault-driver.js';
import { createQemuFaultDriver } from './faults/qemu-fault-driver.js';
import { faultsCheck } from './faults/run-fault.js';

export interface PropertyDefinition {
  readonly name: string;
  readonly description: string;
  readonly checks: readonly Check[];
  /** Needs qemu-img even when the implementation is our engine. */
  readonly needsQemu: boolean;
  /** Relative cost of one sequence; the gate splits its budget by it. */
  readonly cost: number;
  /** The driver this property always runs (whatever --impl says); default: the --impl driver. */
  readonly driver?: DriverFactory;
  /**
   * The driver per implementation under test, when the property needs more
   * than the ImageDriver calls (faults); it does not apply to one not listed.
   */
  readonly drivers?: Partial<Record<BuiltinImplName, DriverFactory>>;
  /** Defaults for the sequences it draws (a caller's constraints win). */
  readonly sequence?: SequenceConstraints;
  /** Defaults for one built-in implementation instead of `sequence`. */
  readonly sequenceFor?: Partial<Record<BuiltinImplName, SequenceConstraints>>;
  /** The checks for one built-in implementation, where they differ from `checks`. */
  readonly checksFor?: Partial<Record<BuiltinImplName, readonly Check[]>>;
  /**
   * The implementations for which its sequences build backing chains
   * (createOverlay, rebase, commit): QEMU and our engine (a cmd:
   * implementation's protocol has no chain ops).
   */
  readonly chainImpls?: readonly ImplName[];
  /**
   * A reader property: this built-in implementation builds each image and the
   * implementation under test (a `cmd:` one) only reads it. Absent: the
   * implementation under test does everything.
   */
  readonly readerOf?: 'ts' | 'qemu';
}

/** Percent of extended-L2 images (32 subclusters a cluster) among the sequences every property draws, against every implementation. */
export const extendedL2Percent = 25;

export const readsAndOutcomes: PropertyDefinition = {
  name: 'readsAndOutcomes',
  description: 'every op succeeds or fails as the model predicts, and every read returns what the model predicts',
  checks: [readsCheck],
  needsQemu: false,
  cost: 1,
  chainImpls: ['qemu', 'ts'],
};

export const structure: PropertyDefinition = {
  name: 'structure',
  description:
    "after every op the flushed image is equivalent to the model and the checker finds it clean, and what the engine's map, info and check print agrees with the model",
  checks: [structureCheck, engineOutputsCheck],
  needsQemu: false,
  cost: 2,
  chainImpls: ['qemu', 'ts'],
};

export const reopen: PropertyDefinition = {
  name: 'reopen',
  description: 'after close and reopen the whole disk reads the same and the structure is unchanged',
  checks: [reopenCheck],
  needsQemu: false,
  cost: 1,
  chainImpls: ['qemu', 'ts'],
};

export const space: PropertyDefinition = {
  name: 'space',
  description: 'the file never grows beyond what its live clusters need plus a stated metadata bound',
  checks: [spaceCheck],
  needsQemu: false,
  cost: 2,
  chainImpls: ['qemu', 'ts'],
};

export const qemuJudges: PropertyDefinition = {
  name: 'qemuJudges',
  description: 'at the end, qemu-img check finds no corruption or leak, qemu-img compare matches the model and qemu-img map agrees with the model',
  checks: [qemuJudgesCheck],
  needsQemu: true,
  cost: 3,
  chainImpls: ['qemu', 'ts'],
};

export const handoff: PropertyDefinition = {
  name: 'handoff',
  description:
    'one image file changes hands between our engine and QEMU at every reopen; reads and outcomes match the model throughout, and at the end qemu-img check, compare and map agree with the model',
  checks: [qemuJudgesCheck],
  needsQemu: true,
  // its sequences are the slowest (processes start and stop at every handoff): a smaller share of runs
  cost: 0.6,
  driver: createHandoffDriver,
  // reopen is the handoff: never switched off
  sequence: { swarm: { alwaysOn: ['write', 'reopen'] } },
  chainImpls: ['qemu', 'ts'],
};

const crashSequence: SequenceConstraints = {
  faults: true,
  // Refcount widths where a leaked reference cannot make a later snapshot overflow earlier than the model predicts;
  // small disks and clusters up to 64 KiB, since every fault copies, checks and reads the whole image several times.
  image: { refcountBits: [1, 16, 64], virtualSizeMax: 2 * 1024 * 1024, clusterBitsMax: 16 },
};

export const crashConsistency: PropertyDefinition = {
  name: 'crashConsistency',
  description:
    'crashes and I/O errors drawn inside the sequences (our engine on a fault-injecting file; QEMU killed by SIGKILL and failed by blkdebug): after each, the image opens, the checker finds no corruption (leaks allowed, and no later op adds to them), every sector reads as a state since the last flush, a failed op answers io and its retry succeeds; on our engine the file stays within the space bound plus the clusters faults leaked',
  checks: [faultsCheck, spaceCheck],
  needsQemu: false,
  cost: 1,
  drivers: { ts: createFaultDriver, qemu: createQemuFaultDriver },
  sequence: crashSequence,
  // The space bound after QEMU's own repair (check -r all rebuilding the refcount structures of a dirty
  // image, then growing them again) is not modelled: QEMU's fault runs judge contents and checks, not space.
  checksFor: { qemu: [faultsCheck] },
  // faults on overlays: the top image's guest ops meet them; the chain ops run without faults
  chainImpls: ['qemu', 'ts'],
  sequenceFor: {
    qemu: {
      ...crashSequence,
      // 1-bit refcounts make nearly every snapshot create overflow, and QEMU 7.2 leaks a cluster on that refusal
      // (the known divergence in corpus/cases/qemu-qemuJudges-qemu-img-check-snapshotCreate-9241c9949ceda02d.json):
      // the faults would find it again under other identities
      image: { ...crashSequence.image, refcountBits: [16, 64] },
    },
  },
};

export const readsEngineImages: PropertyDefinition = {
  name: 'readsEngineImages',
  description:
    'a reader opens the images our engine builds in random states (snapshots, zero clusters, discards, compressed clusters, every option) and reads them, in random ranges and whole, as the model says',
  checks: [readsCheck],
  needsQemu: false,
  cost: 1,
  readerOf: 'ts',
};

export const readsQemuImages: PropertyDefinition = {
  name: 'readsQemuImages',
  description: 'a reader opens the images QEMU builds in random states and reads them, in random ranges and whole, as the model says',
  checks: [readsCheck],
  needsQemu: true,
  cost: 2,
  readerOf: 'qemu',
};

export const properties = { readsAndOutcomes, structure, reopen, space, qemuJudges, handoff, crashConsistency, readsEngineImages, readsQemuImages } as const;
export type PropertyName = keyof typeof properties;
export const propertyNames = Object.keys(properties) as PropertyName[];

/** The checks `def` runs against `impl`. */
export function checksOf(def: PropertyDefinition, impl: string): readonly Check[] {
  return (def.checksFor as Partial<Record<string, readonly Check[]>> | undefined)?.[impl] ?? def.checks;
}

export function isPropertyName(name: string): name is PropertyName {
  return Object.hasOwn(properties, name);
}
