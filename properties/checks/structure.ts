// structure: after every operation the flushed image decodes, is equivalent to
// the model (same kinds, sharing, bytes, refcounts and COPIED flags up to a
// renaming of host offsets), and the model's checker finds it clean. On a
// backing chain every layer file is judged the same way against the model's
// state of that layer (a raw layer byte for byte), and each qcow2 file's
// header names the file below it, with its format, as the driver laid the
// chain out.
import { abstractImage, backingLayers, bufferReader, checkImage, decodeImage, equivalent, type BackingLayer, type DecodedImage, type ModelState } from '../../model/index.js';
import { formatStep } from '../steps.js';
import { PropertyViolation } from '../violation.js';
import type { Check, CheckEnv, ImageSample } from './check.js';

export function assertStructure(sample: ImageSample, state: ModelState, when: string): void {
  const eq = equivalent(state, abstractImage(sample.decoded()));
  if (!eq.ok) throw new PropertyViolation('structure', `${when}: ${eq.message}`);
  const report = sample.report();
  if (report.verdict !== 'clean') {
    const messages = report.messages.slice(0, 5).join('; ');
    throw new PropertyViolation(
      'check-image',
      `${when}: the checker says ${report.verdict} (${report.corruptions} corruptions, ${report.leaks} leaks, ${report.checkErrors} check errors): ${messages}`,
    );
  }
}

/** A file of the chain as the driver names it. */
interface ChainFileName {
  readonly name: string;
  readonly format: 'qcow2' | 'raw';
}

/** One backing file: the driver's name for it, its bytes now, and the model's layer. */
export interface JudgedLayer {
  readonly file: ChainFileName;
  readonly bytes: Uint8Array;
  readonly layer: BackingLayer;
}

/**
 * The backing files of the driver's chain, nearest first, paired with the
 * model's layers; [] for a driver without a chain. Throws a 'structure'
 * violation when the driver's chain and the model's differ in length or format.
 */
export async function chainLayers(env: CheckEnv, when: string): Promise<JudgedLayer[]> {
  const layers = backingLayers(env.state);
  const files = env.driver.backingChain?.() ?? [];
  if (files.length !== layers.length || files.some((f, i) => f.format !== layers[i]!.format)) {
    const show = (formats: readonly string[]) => `[${formats.join(', ')}]`;
    throw new PropertyViolation(
      'structure',
      `${when}: the implementation's backing chain is ${show(files.map((f) => `${f.name} (${f.format})`))}, the model's ${show(layers.map((l) => l.format))}`,
    );
  }
  if (files.length === 0) return [];
  const bytes = (await env.driver.backingFileBytes?.()) ?? [];
  return files.map((file, i) => ({ file, bytes: bytes[i] ?? new Uint8Array(), layer: layers[i]! }));
}

/** The header's backing file name and format against the chain file below it (`below` undefined: none). */
function assertNamesBelow(decoded: DecodedImage, below: ChainFileName | undefined, what: string, when: string): void {
  const { backingFile, backingFormat } = decoded.header;
  const found = backingFile === undefined ? 'no backing file' : `backing file '${backingFile}' format ${backingFormat ?? '(none)'}`;
  const expected = below === undefined ? 'no backing file' : `backing file '${below.name}' format ${below.format}`;
  if (found !== expected) throw new PropertyViolation('structure', `${when}: the header of ${what} names ${found}, the chain has ${expected}`);
}

function decodeLayer(bytes: Uint8Array, what: string, when: string): DecodedImage {
  try {
    return decodeImage(bufferReader(bytes));
  } catch (error) {
    throw new PropertyViolation('structure', `${when}: ${what} cannot be decoded: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** One backing file against its model layer: a raw one byte for byte, a qcow2 one as the top is judged. */
function assertLayer(judged: JudgedLayer, below: ChainFileName | undefined, when: string): void {
  const { file, bytes, layer } = judged;
  const what = `the backing file ${file.name}`;
  if (layer.format === 'raw') {
    if (sameBytes(bytes, layer.bytes)) return;
    const at = bytes.length === layer.bytes.length ? bytes.findIndex((b, i) => b !== layer.bytes[i]) : Math.min(bytes.length, layer.bytes.length);
    if (at >= 0) throw new PropertyViolation('structure', `${when}: ${what} (raw, ${bytes.length} bytes) differs from the model's ${layer.bytes.length} bytes at byte ${at}`);
    return;
  }
  const decoded = decodeLayer(bytes, what, when);
  const eq = equivalent(layer.image, abstractImage(decoded));
  if (!eq.ok) throw new PropertyViolation('structure', `${when}: ${what}: ${eq.message}`);
  const report = checkImage(bufferReader(bytes));
  if (report.verdict !== 'clean') {
    throw new PropertyViolation('check-image', `${when}: the checker says ${report.verdict} on ${what}: ${report.messages.slice(0, 5).join('; ')}`);
  }
  assertNamesBelow(decoded, below, what, when);
}

/** What the layers check remembers: each file's bytes and model layer when it was last judged (a layer changes only by commit). */
type LayerMemory = Map<string, { readonly bytes: Uint8Array; readonly layer: BackingLayer }>;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Judges the top's backing name and every backing file not judged already with the same bytes and model layer. */
export async function assertChain(env: CheckEnv, when: string): Promise<void> {
  const layers = await chainLayers(env, when);
  assertNamesBelow((await env.image()).decoded(), layers[0]?.file, 'the image', when);
  let memory = env.scratch.get('structure-layers') as LayerMemory | undefined;
  if (memory === undefined) env.scratch.set('structure-layers', (memory = new Map()));
  for (const [i, judged] of layers.entries()) {
    const seen = memory.get(judged.file.name);
    if (seen !== undefined && seen.layer === judged.layer && sameBytes(seen.bytes, judged.bytes)) continue;
    assertLayer(judged, layers[i + 1]?.file, when);
    memory.set(judged.file.name, { bytes: judged.bytes, layer: judged.layer });
  }
}

export const structureCheck: Check = {
  name: 'structure',
  async afterOp(env, op) {
    const when = `after ${formatStep(op)}`;
    assertStructure(await env.image(), env.state, when);
    await assertChain(env, when);
  },
};
