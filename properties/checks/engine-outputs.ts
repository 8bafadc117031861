// What our engine prints about an image, judged against the model after every
// op: `qcow2-verify map` (the engine's map entries), `qcow2-verify info` (its
// fields and snapshot list) and `qcow2-verify check` (the checker's report on
// the flushed bytes: counts, total and allocated clusters, end offset). The
// structure check already holds the check's verdict to "clean"; qemu-img's map
// is judged by qemu-map. Map and info come from drivers that have them (the
// engine); the check report applies to every driver's bytes.
//
// On a backing chain the same holds for every layer: the checker's report on
// each qcow2 backing file against the model's state of that layer, and
// `info --backing-chain`: each qcow2 layer's info against its model state,
// and every qcow2 file's backing file name and format against the file below
// it in the driver's chain.
import { bufferReader, checkImage, geometry, guestClusterKind, modelMap, type CheckReport, type ModelState } from '../../model/index.js';
import type { EngineReports } from '../driver.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check } from './check.js';
import { chainLayers, type JudgedLayer } from './structure.js';
import { mapDisagreement } from './qemu-map.js';

/** Active-view guest clusters with a host cluster (normal or zero-alloc): qemu-img check's allocated-clusters. */
function allocatedClusters(state: ModelState): number {
  let n = 0;
  for (const table of state.active) {
    if (table === undefined) continue;
    for (const entry of table.entries.values()) if (entry.kind !== 'zero-plain') n++;
  }
  return n;
}

/** The first field of `qcow2-verify check`'s report that the model contradicts, or undefined. */
export function checkReportDisagreement(report: CheckReport, state: ModelState, fileLength: number): string | undefined {
  const cs = 2 ** state.options.clusterBits;
  const expect: ReadonlyArray<readonly [string, unknown, unknown]> = [
    ['corruptions', 0, report.corruptions],
    ['leaks', 0, report.leaks],
    ['check-errors', 0, report.checkErrors],
    ['total-clusters', Math.ceil(state.options.virtualSize / cs), report.totalClusters],
    ['allocated-clusters', allocatedClusters(state), report.allocatedClusters],
  ];
  for (const [field, want, got] of expect) if (want !== got) return `${field} is ${String(got)}, the model expects ${String(want)}`;
  const end = report.imageEndOffset;
  const fileEnd = Math.ceil(fileLength / cs) * cs;
  if (end === undefined || end % cs !== 0 || end <= 0 || end > fileEnd) {
    return `image-end-offset is ${String(end)}: not a cluster boundary in (0, ${fileEnd}] (the file is ${fileLength} bytes)`;
  }
  return undefined;
}

/** The first `qcow2-verify info` field the model contradicts, or undefined. */
export function infoDisagreement(info: EngineReports['info'], state: ModelState, fileLength: number): string | undefined {
  const o = state.options;
  const expect: ReadonlyArray<readonly [string, unknown, unknown]> = [
    ['virtual size', o.virtualSize, info.virtualSize],
    ['cluster size', 2 ** o.clusterBits, info.clusterSize],
    ['version', o.version, info.version],
    ['refcount bits', o.refcountBits, info.refcountBits],
    ['lazy refcounts', o.lazyRefcounts, info.lazyRefcounts],
    ['corrupt', false, info.corrupt],
    ['file length', fileLength, info.fileLength],
    ['snapshot count', state.snapshots.length, info.snapshots.length],
  ];
  for (const [field, want, got] of expect) if (want !== got) return `${field} is ${String(got)}, the model expects ${String(want)}`;
  // Only lazy refcounts let an open image carry the dirty bit.
  if (info.dirty && !o.lazyRefcounts) return 'dirty is true without lazy refcounts';
  for (const [i, s] of state.snapshots.entries()) {
    const got = info.snapshots[i];
    const shown = got === undefined ? 'nothing' : `ID ${got.id} name '${got.name}' disk size ${got.diskSize}`;
    if (got?.id !== s.id || got.name !== s.name || got.diskSize !== s.diskSize) {
      return `snapshot ${i} is ${shown}, the model expects ID ${s.id} name '${s.name}' disk size ${s.diskSize}`;
    }
  }
  return undefined;
}

/** Whether every guest cluster of [start, start + length) is compressed in the model (qemu-img map gives such data no offset). */
function allCompressed(state: ModelState, start: number, length: number, cs: number): boolean {
  for (let c = Math.floor(start / cs); c * cs < start + length; c++) if (guestClusterKind(state, c) !== 'compressed') return false;
  return true;
}

/**
 * The first problem with the engine's map: kinds and depths against the model,
 * and each data range's host offset in the image (none exactly where the model
 * has compressed clusters; else at a subcluster boundary, a cluster boundary
 * without subclusters).
 */
export function engineMapDisagreement(map: EngineReports['map'], state: ModelState, fileLength: number): string | undefined {
  const kinds = mapDisagreement(modelMap(state), map, state.options.virtualSize, 'qcow2-verify map');
  if (kinds !== undefined) return kinds;
  const { clusterSize: cs, subclusterSize } = geometry(state.options);
  // the file may end inside its last cluster (an unwritten tail reads as zeros)
  const fileEnd = Math.ceil(fileLength / cs) * cs;
  // data reading as zeros is the tail of a last cluster past the end of the file (impl/map.ts);
  // a range of a backing file (depth > 0) has its offset in that file, judged by its kinds only
  const bad = map.find((e) =>
    e.data &&
    e.depth === 0 &&
    (e.offset === undefined
      ? !allCompressed(state, e.start, e.length, cs)
      : e.zero
        ? e.offset < fileLength || e.offset + e.length > fileEnd
        : e.offset % subclusterSize !== 0 || e.offset + e.length > fileEnd));
  return bad === undefined ? undefined : `data at guest 0x${bad.start.toString(16)}+0x${bad.length.toString(16)} maps to host offset ${String(bad.offset)}, not clusters inside the ${fileLength}-byte file`;
}

/** The backing file an info names against the chain file below it (undefined: none), or undefined when they agree. */
function infoBackingDisagreement(info: EngineReports['info'], below: JudgedLayer['file'] | undefined): string | undefined {
  const found = info.backingFile === undefined ? 'no backing file' : `backing file '${info.backingFile}' format ${info.backingFormat ?? '(none)'}`;
  const expected = below === undefined ? 'no backing file' : `backing file '${below.name}' format ${below.format}`;
  return found === expected ? undefined : `${found}, the chain has ${expected}`;
}

/** The first disagreement of `check` and `info --backing-chain` on a backing file with the model, or undefined. */
function layerDisagreement(layers: readonly JudgedLayer[], backingInfo: EngineReports['backingInfo']): { readonly check: 'engine-check' | 'engine-info'; readonly message: string } | undefined {
  for (const [i, { file, bytes, layer }] of layers.entries()) {
    if (layer.format === 'raw') continue;
    const check = checkReportDisagreement(checkImage(bufferReader(bytes)), layer.image, bytes.length);
    if (check !== undefined) return { check: 'engine-check', message: `qcow2-verify check on the backing file ${file.name}: ${check}` };
    if (backingInfo === undefined) continue;
    const info = backingInfo[i];
    if (info === undefined) return { check: 'engine-info', message: `qcow2-verify info --backing-chain has no qcow2 info for the backing file ${file.name}` };
    const fields = infoDisagreement(info, layer.image, bytes.length) ?? infoBackingDisagreement(info, layers[i + 1]?.file);
    if (fields !== undefined) return { check: 'engine-info', message: `qcow2-verify info --backing-chain on the backing file ${file.name}: ${fields}` };
  }
  return undefined;
}

export const engineOutputsCheck: Check = {
  name: 'engine-outputs',
  async afterOp(env, op) {
    const sample = await env.image();
    const when = `after ${formatStep(op)}`;
    const check = checkReportDisagreement(sample.report(), env.state, sample.bytes.length);
    if (check !== undefined) throw new PropertyViolation('engine-check', `${when}: qcow2-verify check: ${check}`);
    const layers = await chainLayers(env, when);
    const reports = await env.driver.reports?.();
    const layer = layerDisagreement(layers, reports?.backingInfo);
    if (layer !== undefined) throw new PropertyViolation(layer.check, `${when}: ${layer.message}`);
    if (reports === undefined) return;
    const map = engineMapDisagreement(reports.map, env.state, sample.bytes.length);
    if (map !== undefined) throw new PropertyViolation('engine-map', `${when}: ${map}`);
    const info = infoDisagreement(reports.info, env.state, sample.bytes.length) ?? infoBackingDisagreement(reports.info, layers[0]?.file);
    if (info !== undefined) throw new PropertyViolation('engine-info', `${when}: qcow2-verify info: ${info}`);
  },
};
