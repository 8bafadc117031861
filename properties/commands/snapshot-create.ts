// snapshot -c: the names qemu-img accepts and its lookups trip over (`-a` reads
// a name as an ID first, `-d` as a name only): words, numbers, the ID of another
// snapshot (or the ID this one will get), another snapshot's name, and the empty
// name. Duplicates are kept as drawn when `duplicate` is set, else made unique
// by a suffix.
import fc from 'fast-check';
import type { ModelState, SnapshotCreateOp } from '../../model/index.js';
import { StepCommand } from './command.js';

export type SnapshotNameDraw =
  | { readonly kind: 'word'; readonly word: string }
  | { readonly kind: 'number'; readonly n: number }
  | { readonly kind: 'id-of'; readonly index: number }
  | { readonly kind: 'name-of'; readonly index: number }
  | { readonly kind: 'empty' };

export class SnapshotCreateCommand extends StepCommand {
  constructor(
    readonly draw: SnapshotNameDraw,
    readonly duplicate: boolean,
  ) {
    super();
  }

  resolve(state: ModelState): SnapshotCreateOp {
    const base = drawnName(this.draw, state);
    if (this.duplicate) return { kind: 'snapshotCreate', name: base };
    const taken = new Set(state.snapshots.map((s) => s.name));
    let name = base;
    for (let i = 2; taken.has(name); i++) name = `${base}-${i}`;
    return { kind: 'snapshotCreate', name };
  }

  protected describe(): string {
    return `snapshot -c ${describeDraw(this.draw)}${this.duplicate ? '' : ' (unique)'}`;
  }
}

/**
 * The name before deduplication. With no snapshots alive, 'id-of' is the ID this
 * snapshot gets ("1") and 'name-of' the empty name.
 */
function drawnName(draw: SnapshotNameDraw, state: ModelState): string {
  switch (draw.kind) {
    case 'word':
      return draw.word;
    case 'number':
      return String(draw.n);
    case 'id-of':
      return state.snapshots[draw.index % Math.max(1, state.snapshots.length)]?.id ?? '1';
    case 'name-of':
      return state.snapshots[draw.index % Math.max(1, state.snapshots.length)]?.name ?? '';
    case 'empty':
      return '';
    default: {
      const never: never = draw;
      throw new Error(`unknown snapshot name draw ${JSON.stringify(never)}`);
    }
  }
}

function describeDraw(draw: SnapshotNameDraw): string {
  if (draw.kind === 'id-of') return `<ID of #${draw.index}>`;
  if (draw.kind === 'name-of') return `<name of #${draw.index}>`;
  if (draw.kind === 'empty') return "''";
  return draw.kind === 'word' ? draw.word : String(draw.n);
}

const words = ['base', 'before', 'after', 'clean', 'golden', 'pre', 'post', 'snap'];

export function snapshotNameDraw(): fc.Arbitrary<SnapshotNameDraw> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...words).map((word) => ({ kind: 'word', word }) as const), weight: 5 },
    { arbitrary: fc.integer({ min: 1, max: 6 }).map((n) => ({ kind: 'number', n }) as const), weight: 2 },
    { arbitrary: fc.nat({ max: 15 }).map((index) => ({ kind: 'id-of', index }) as const), weight: 2 },
    { arbitrary: fc.nat({ max: 15 }).map((index) => ({ kind: 'name-of', index }) as const), weight: 2 },
    { arbitrary: fc.constant({ kind: 'empty' } as const), weight: 1 },
  );
}

export function snapshotCreateCommand(): fc.Arbitrary<SnapshotCreateCommand> {
  const duplicate = fc.oneof({ arbitrary: fc.constant(false), weight: 2 }, { arbitrary: fc.constant(true), weight: 1 });
  return fc.tuple(snapshotNameDraw(), duplicate).map(([draw, dup]) => new SnapshotCreateCommand(draw, dup));
}
