// The base of every model command (style.md §7). A command is generated with
// symbolic arguments (a range anchored at "the last cluster", "snapshot number
// k"), resolves them against the model when it runs, stores what it resolved so
// that toString prints the concrete qemu-io line, and hands the concrete step to
// the run context, which steps the model, applies the driver and compares.
import type fc from 'fast-check';
import { geometry, type ModelState } from '../../model/index.js';
import type { RunContext } from '../context.js';
import { formatStep, type Step } from '../steps.js';
import type { Geometry } from '../arbitraries/_internals/range.js';

/** The model side of fast-check's model-based run: mutable box around the immutable state. */
export interface ModelBox {
  state: ModelState;
}

export abstract class StepCommand implements fc.AsyncCommand<ModelBox, RunContext> {
  private resolved: Step | undefined;

  /** Every command applies in every state: refusals are part of what is checked. */
  check(_m: Readonly<ModelBox>): boolean {
    return true;
  }

  async run(m: ModelBox, ctx: RunContext): Promise<void> {
    const step = this.resolve(m.state);
    this.resolved = step;
    await ctx.runStep(m, step);
  }

  /** The concrete step this command means in `state`. Pure. */
  abstract resolve(state: ModelState): Step;

  /** The symbolic arguments, for a command that has not run yet. */
  protected abstract describe(): string;

  toString(): string {
    return this.resolved === undefined ? `<${this.describe()}>` : formatStep(this.resolved);
  }
}

/** A command whose step is already concrete (replay of a saved sequence). */
export class FixedCommand extends StepCommand {
  constructor(private readonly step: Step) {
    super();
  }
  resolve(): Step {
    return this.step;
  }
  protected describe(): string {
    return formatStep(this.step);
  }
}

export function geometryOf(state: ModelState): Geometry {
  const g = geometry(state.options);
  return {
    virtualSize: state.options.virtualSize,
    clusterSize: g.clusterSize,
    l2EntriesCount: g.l2EntriesCount,
    ...(state.options.extendedL2 === true ? { subclusterSize: g.subclusterSize } : {}),
  };
}
