// qemu-img map agrees with the model's view of the guest disk: every byte of
// [0, virtualSize) is data, zero or unallocated in both, at the same depth of
// the backing chain. One `qemu-img map` per
// sequence, at the end, on the image the driver wrote (whichever program wrote
// it), run by the qemuJudges check.
import { modelMap, type ModelMapRange, type ModelState } from '../../model/index.js';
import { qemuImgMap, type QemuMapEntry } from '../../oracle/index.js';
import { PropertyViolation } from '../violation.js';

export type MapKind = ModelMapRange['kind'];

/**
 * The model's kind for one `qemu-img map` entry (at any depth): `data` is a
 * normal or compressed cluster or a raw backing file's bytes (QEMU may add `zero` when the host range is a
 * hole in the file, which changes nothing for the guest), `present` without data
 * is a zero cluster (zero-plain or zero-alloc), not present is unallocated.
 * Present, not data and not zero is no qcow2 cluster kind: undefined.
 */
export function qemuMapKind(entry: QemuMapEntry): MapKind | undefined {
  if (entry.data) return 'data';
  if (!entry.present) return 'unallocated';
  return entry.zero ? 'zero' : undefined;
}

function showEntry(e: QemuMapEntry): string {
  return `{start 0x${e.start.toString(16)}, length 0x${e.length.toString(16)}, depth ${e.depth}, present ${e.present}, zero ${e.zero}, data ${e.data}}`;
}

/**
 * The first guest range where qemu-img map (or another map in its JSON shape,
 * named by `source`: our engine's) and the model disagree, as a message, or
 * undefined when they agree on every byte of [0, virtualSize). Both lists are
 * merged ranges, but QEMU splits where the host offsets are not contiguous, so
 * the comparison walks both lists byte range by byte range.
 */
export function mapDisagreement(
  model: readonly ModelMapRange[],
  qemu: readonly QemuMapEntry[],
  virtualSize: number,
  source = 'qemu-img map',
): string | undefined {
  let pos = 0;
  let m = 0;
  let q = 0;
  while (pos < virtualSize) {
    const mr = model[m];
    const qe = qemu[q];
    if (qe === undefined) return `${source} ends at 0x${pos.toString(16)}, the virtual size is 0x${virtualSize.toString(16)}`;
    if (mr === undefined) return `the model's map ends at 0x${pos.toString(16)}, the virtual size is 0x${virtualSize.toString(16)}`;
    if (qe.start > pos || qe.start + qe.length <= pos) return `${source} has no entry for guest offset 0x${pos.toString(16)} (next: ${showEntry(qe)})`;
    if (qe.depth !== mr.depth) {
      return `${source} reports depth ${qe.depth} at guest offset 0x${pos.toString(16)}, the model says depth ${mr.depth} (${mr.kind}): ${showEntry(qe)}`;
    }
    const qemuKind = qemuMapKind(qe);
    if (qemuKind !== mr.kind) {
      return `guest offset 0x${pos.toString(16)}: ${source} says ${qemuKind ?? 'no cluster kind'} ${showEntry(qe)}, the model says ${mr.kind} (range 0x${mr.start.toString(16)}+0x${mr.length.toString(16)})`;
    }
    pos = Math.min(mr.start + mr.length, qe.start + qe.length);
    if (pos >= mr.start + mr.length) m++;
    if (pos >= qe.start + qe.length) q++;
  }
  const extra = qemu[q];
  return extra === undefined ? undefined : `${source} reports a range past the virtual size 0x${virtualSize.toString(16)}: ${showEntry(extra)}`;
}

/** Runs qemu-img map on the image at `path` and throws a 'qemu-img-map' violation where it disagrees with the model. */
export async function judgeMap(path: string, state: ModelState): Promise<void> {
  const disagreement = mapDisagreement(modelMap(state), await qemuImgMap(path), state.options.virtualSize);
  if (disagreement !== undefined) throw new PropertyViolation('qemu-img-map', disagreement);
}
