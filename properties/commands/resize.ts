// truncate: grow (a little, past an L1 entry's reach so that the L1 table
// grows, or past the reach of the L1 table's next cluster so that the table
// needs one more cluster and moves), shrink (cluster aligned or not — the stale-tail rule), and sizes that
// are not a multiple of 512 (invalid-argument). Sizes stay under a cap so that
// whole-disk reads in the checks stay cheap.
import fc from 'fast-check';
import type { ModelState, ResizeOp } from '../../model/index.js';
import { StepCommand, geometryOf } from './command.js';

export type ResizeMode = 'grow' | 'grow-l1' | 'grow-l1-cluster' | 'shrink' | 'shrink-half' | 'unaligned';

/** No resize makes the disk larger than this (whole-disk reads stay cheap). */
export const resizeSizeMax = 16 * 1024 * 1024;

export class ResizeCommand extends StepCommand {
  constructor(
    readonly mode: ResizeMode,
    readonly amount: number,
  ) {
    super();
  }

  resolve(state: ModelState): ResizeOp {
    const g = geometryOf(state);
    const size = g.virtualSize;
    const sectors = (n: number) => 512 * n;
    const l1Coverage = g.clusterSize * g.l2EntriesCount;
    let target: number;
    switch (this.mode) {
      case 'grow':
        target = size + sectors(1 + (this.amount % ((2 * g.clusterSize) / 512)));
        break;
      case 'grow-l1-cluster': {
        // past what the L1 table's clusters so far reach (2 MiB per cluster with
        // 512 B clusters; larger clusters reach past the cap: then as grow-l1)
        const l1ClusterCoverage = l1Coverage * (g.clusterSize / 8); // 8-byte L1 entries a cluster
        target = (Math.floor(size / l1ClusterCoverage) + 1) * l1ClusterCoverage + sectors(1 + (this.amount % 3));
        if (target <= resizeSizeMax) break;
        return new ResizeCommand('grow-l1', this.amount).resolve(state);
      }
      case 'grow-l1':
        // past the next L1 entry's reach when that is affordable, else a few clusters
        target = l1Coverage <= resizeSizeMax / 2 ? (Math.floor(size / l1Coverage) + 1) * l1Coverage + sectors(this.amount % 3)
          : size + g.clusterSize * (1 + (this.amount % 4));
        break;
      case 'shrink':
        target = size - sectors(1 + (this.amount % Math.max(1, Math.floor(size / 512))));
        break;
      case 'shrink-half':
        target = sectors(Math.floor(size / 1024));
        break;
      case 'unaligned':
        return { kind: 'resize', size: size + 1 + (this.amount % 511) };
      default: {
        const never: never = this.mode;
        throw new Error(`unknown resize mode ${String(never)}`);
      }
    }
    // never empty, never past the cap
    target = Math.max(512, target);
    if (target > resizeSizeMax) target = Math.max(512, sectors(Math.floor(size / 1024)));
    return { kind: 'resize', size: target };
  }

  protected describe(): string {
    return `truncate ${this.mode}`;
  }
}

export function resizeCommand(): fc.Arbitrary<ResizeCommand> {
  const mode = fc.oneof(
    { arbitrary: fc.constant<ResizeMode>('grow'), weight: 3 },
    { arbitrary: fc.constant<ResizeMode>('grow-l1'), weight: 1 },
    { arbitrary: fc.constant<ResizeMode>('shrink'), weight: 3 },
    { arbitrary: fc.constant<ResizeMode>('shrink-half'), weight: 1 },
    { arbitrary: fc.constant<ResizeMode>('unaligned'), weight: 1 },
  );
  return fc.tuple(mode, fc.nat()).map(([m, amount]) => new ResizeCommand(m, amount));
}
