// createOverlay: the image becomes the backing file of a new empty qcow2 image
// (qcow2 or, one time in four, raw backing), whose size is the same as the
// image's, smaller or larger, and whose version, cluster size and refcount
// width (16 bits or more) are drawn afresh. Chains stay at most chainDepthMax deep: past that
// the command is a flush.
import fc from 'fast-check';
import { backingLayers, type CreateOverlayOp, type FlushOp, type ImageOptions, type ModelState } from '../../model/index.js';
import { imageOptions } from '../arbitraries/image-options.js';
import { StepCommand } from './command.js';

/** As for the first image of a chain sequence (chainRefcountBitsMin): no width where QEMU's known snapshot leaks come first. */
const overlayRefcountBits = [16, 32, 64];

/** A larger overlay grows by at most this much (whole-disk reads stay cheap). */
const overlayGrowthSectorsMax = (128 * 1024) / 512;

/** The deepest chain the generators build: the image and three backing files. */
export const chainDepthMax = 3;

export type OverlaySize = 'same' | 'smaller' | 'larger';

export class CreateOverlayCommand extends StepCommand {
  constructor(
    readonly backingFormat: 'qcow2' | 'raw',
    readonly options: ImageOptions,
    readonly size: OverlaySize,
    readonly amount: number,
  ) {
    super();
  }

  resolve(state: ModelState): CreateOverlayOp | FlushOp {
    if (backingLayers(state).length >= chainDepthMax) return { kind: 'flush' };
    // smaller by up to half, larger by up to half or 128 KiB, so that chains of three keep something to read through
    const sectors = Math.max(1, state.options.virtualSize / 512);
    const delta = 1 + (this.amount % Math.max(1, Math.floor(sectors / 2)));
    const target = this.size === 'same' ? sectors : this.size === 'smaller' ? Math.max(1, sectors - delta) : sectors + Math.min(delta, overlayGrowthSectorsMax);
    return { kind: 'createOverlay', backingFormat: this.backingFormat, options: { ...this.options, virtualSize: 512 * target } };
  }

  protected describe(): string {
    return `createOverlay ${this.backingFormat} ${this.size}/${this.amount} v${this.options.version} c${this.options.clusterBits}`;
  }
}

export function createOverlayCommand(): fc.Arbitrary<CreateOverlayCommand> {
  return fc
    .tuple(
      fc.oneof({ arbitrary: fc.constant('qcow2' as const), weight: 3 }, { arbitrary: fc.constant('raw' as const), weight: 1 }),
      // 4 KiB … 64 KiB clusters mostly: commit is modelled when the image's clusters are at least the mirror granule
      fc.oneof(
        { arbitrary: imageOptions({ clusterBitsMin: 12, clusterBitsMax: 16, refcountBits: overlayRefcountBits }), weight: 3 },
        { arbitrary: imageOptions({ refcountBits: overlayRefcountBits }), weight: 1 },
        // subclusters reading through to the backing file per subcluster
        { arbitrary: imageOptions({ versions: [3], clusterBitsMin: 14, clusterBitsMax: 16, refcountBits: overlayRefcountBits, extendedL2Percent: 100 }), weight: 1 },
      ),
      fc.constantFrom<OverlaySize>('same', 'smaller', 'larger'),
      fc.nat(),
    )
    .map(([format, options, size, amount]) => new CreateOverlayCommand(format, options, size, amount));
}
