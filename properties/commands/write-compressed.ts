// write -c: whole clusters stored as compressed streams. The range is anchored
// like a write's and then widened to whole clusters (up to QEMU's 8 parallel
// per-cluster tasks), so compressed clusters land next to normal, zero and
// shared ones, at L2 boundaries and at the partial last cluster; now and then
// it stays unaligned or runs past the end, to check the refusals.
import fc from 'fast-check';
import type { ModelState, WriteCompressedOp } from '../../model/index.js';
import { rangeSpec, resolveRange, type RangeSpec } from '../arbitraries/range.js';
import { StepCommand, geometryOf } from './command.js';

/** QCOW2_MAX_WORKERS: with at most this many clusters every cluster's task starts, so one refused cluster leaves the others written. */
export const compressedClustersMax = 8;

export class WriteCompressedCommand extends StepCommand {
  constructor(
    readonly range: RangeSpec,
    readonly pattern: number,
    /** Seed of the low nibbles (see WriteCompressedOp); undefined for a constant fill. */
    readonly seed: number | undefined,
    /** Keep the range as drawn, unaligned (an invalid-argument refusal). */
    readonly raw: boolean,
  ) {
    super();
  }

  resolve(state: ModelState): WriteCompressedOp {
    const g = geometryOf(state);
    const { offset, length } = resolveRange(this.range, g);
    const op = { kind: 'writeCompressed', pattern: this.pattern, ...(this.seed === undefined ? {} : { seed: this.seed }) } as const;
    if (offset + length > g.virtualSize) return { ...op, offset, length };
    if (this.raw) {
      // A raw range may still be valid (aligned, ending at the virtual size): never more than QEMU's 8 tasks then either.
      const tooMany = offset % g.clusterSize === 0 && length > compressedClustersMax * g.clusterSize;
      return { ...op, offset, length: tooMany ? compressedClustersMax * g.clusterSize : length };
    }
    const start = Math.floor(offset / g.clusterSize) * g.clusterSize;
    const clusters = Math.min(compressedClustersMax, Math.ceil((offset + length - start) / g.clusterSize));
    return { ...op, offset: start, length: Math.min(g.virtualSize, start + clusters * g.clusterSize) - start };
  }

  protected describe(): string {
    return `write -c${this.raw ? ' (raw)' : ''} ${this.range.anchor}/${this.range.intra}/${this.range.length}`;
  }
}

export function writeCompressedCommand(): fc.Arbitrary<WriteCompressedCommand> {
  return fc
    .tuple(
      rangeSpec(),
      fc.integer({ min: 0, max: 255 }),
      fc.oneof({ arbitrary: fc.integer({ min: 1, max: 0x7fffffff }), weight: 2 }, { arbitrary: fc.constant(undefined), weight: 1 }),
      fc.oneof({ arbitrary: fc.constant(false), weight: 9 }, { arbitrary: fc.constant(true), weight: 1 }),
    )
    .map(([range, pattern, seed, raw]) => new WriteCompressedCommand(range, pattern, seed, raw));
}
