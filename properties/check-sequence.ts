// The property suite for another project's own test suite: one drawn sequence
// run against the project's own driver, inside its own fast-check property.
// The gate's runner (runner.ts) adds budgets, batches and reports around the
// same step; here fast-check itself draws, shrinks and prints.
import fc from 'fast-check';
import type { Sequence } from './arbitraries/sequence.js';
import type { DriverFactory } from './driver.js';
import { emptyCoverage } from './coverage.js';
import { properties, type PropertyName } from './registry.js';
import { runSequence } from './runner.js';

export interface CheckSequenceConstraints {
  /** Whose checks run after the steps (outcomes and reads are always compared). Default 'readsAndOutcomes'. */
  readonly property?: PropertyName;
}

/**
 * Runs `seq` (drawn by `sequence()`) against a fresh image from `driver`, step
 * by step beside the model, with the checks of `property`; closes the image.
 * Resolves when every check held. Rejects with the divergence, a
 * PropertyViolation (wrong outcome, wrong bytes, a check that failed: its
 * `check` names which) or an ImplementationError (the driver threw something
 * that is not one of the model's refusals), so that inside
 * `fc.asyncProperty(sequence(), (seq) => checkSequence(myDriver, seq))`
 * fast-check shrinks it to the shortest sequence and prints it as qemu-io
 * commands. `qemuJudges` needs qemu-img (QEMU_IMG or PATH) and rejects with
 * QemuMissingError without it. `handoff` runs its own driver (our engine and
 * QEMU) and is refused here with a RangeError.
 */
export async function checkSequence(driver: DriverFactory, seq: Sequence, constraints: CheckSequenceConstraints = {}): Promise<void> {
  const def = properties[constraints.property ?? 'readsAndOutcomes'];
  if (def.driver !== undefined || def.drivers !== undefined) throw new RangeError(`property ${def.name} runs its own driver, not the one given; pick another property`);
  const failed = await runSequence(driver, seq.options, def.checks, emptyCoverage(), seq.swarm, (model, ctx) => fc.asyncModelRun(() => ({ model, real: ctx }), seq.commands));
  if (failed !== undefined) throw failed.error;
}
