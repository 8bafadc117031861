// The handshake's declaration of what an implementation supports
// (docs/protocol.md, "Handshake"), and what the gate draws from it: only image
// options and op kinds it declares, with everything else listed in the summary
// as left out, so a green gate never claims more than was exercised.
import { chainOpKinds, opKinds, type OpKind } from '../../model/index.js';
import { clusterBitsMax, clusterBitsMin, refcountWidths } from '../arbitraries/image-options.js';
import type { SequenceConstraints } from '../arbitraries/sequence.js';
import { commandKinds, type CommandKind } from '../arbitraries/swarm.js';
import { AnswerFormatError, protocolVersion } from './messages.js';

export type AdapterMode = 'read-only' | 'read-write';

/**
 * Format features an implementation may declare. `compressed`, `extended-l2`,
 * `zstd` and `backing` change what is drawn (see sequenceConstraintsFor);
 * `external-data` is recorded and reported as not yet exercised until the
 * model has it.
 */
export const featureNames = ['compressed', 'backing', 'extended-l2', 'zstd', 'external-data'] as const;
export type FeatureName = (typeof featureNames)[number];
/** The features the gate can exercise now. */
export const exercisedFeatures: readonly FeatureName[] = ['compressed', 'backing', 'extended-l2', 'zstd'];

/**
 * Whether the gate draws backing chains for this implementation: a writer
 * that declares the `backing` feature and the three chain ops (createOverlay,
 * rebase, commit). Readers open single images.
 */
export function drawsChains(caps: Capabilities): boolean {
  return caps.mode === 'read-write' && caps.features.includes('backing') && chainOpKinds.every((k) => caps.ops.includes(k));
}

export interface Capabilities {
  readonly protocol: number;
  /** The implementation's name and version, for reports and corpus cases. */
  readonly name: string;
  readonly version: string;
  readonly mode: AdapterMode;
  /** qcow2 versions it opens (and, read-write, creates). */
  readonly versions: readonly (2 | 3)[];
  readonly clusterBitsMin: number;
  readonly clusterBitsMax: number;
  readonly refcountBits: readonly number[];
  /** Model op kinds it applies (read-write only; empty for a reader). */
  readonly ops: readonly OpKind[];
  readonly features: readonly FeatureName[];
}

function field(o: Record<string, unknown>, key: string, ok: (v: unknown) => boolean, expected: string): unknown {
  const v = o[key];
  if (!ok(v)) throw new AnswerFormatError(`handshake field ${key} is ${JSON.stringify(v) ?? 'missing'}, expected ${expected}`);
  return v;
}

const isString = (v: unknown) => typeof v === 'string';
const subsetOf = (allowed: readonly unknown[]) => (v: unknown) => Array.isArray(v) && v.every((x) => allowed.includes(x));
const nonEmptySubsetOf = (allowed: readonly unknown[]) => (v: unknown) => subsetOf(allowed)(v) && (v as unknown[]).length > 0;
const clusterBitsIn = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= clusterBitsMin && (v as number) <= clusterBitsMax;

/** The capabilities in a handshake answer's body; AnswerFormatError naming the first bad field. */
export function parseCapabilities(body: Readonly<Record<string, unknown>>): Capabilities {
  const o = body as Record<string, unknown>;
  const protocol = field(o, 'protocol', (v) => v === protocolVersion, `${protocolVersion} (this gate speaks protocol version ${protocolVersion})`) as number;
  const mode = field(o, 'mode', (v) => v === 'read-only' || v === 'read-write', 'read-only or read-write') as AdapterMode;
  const min = field(o, 'clusterBitsMin', clusterBitsIn, `an integer in ${clusterBitsMin}..${clusterBitsMax}`) as number;
  const max = field(o, 'clusterBitsMax', (v) => clusterBitsIn(v) && (v as number) >= min, `an integer in ${min}..${clusterBitsMax}`) as number;
  const ops = (o.ops === undefined && mode === 'read-only' ? [] : field(o, 'ops', subsetOf(opKinds), `a list of op kinds (${opKinds.join(', ')})`)) as OpKind[];
  if (mode === 'read-write' && !ops.includes('write')) throw new AnswerFormatError('handshake field ops lacks write, which a read-write implementation needs');
  return {
    protocol,
    name: field(o, 'name', isString, 'a string') as string,
    version: field(o, 'version', isString, 'a string') as string,
    mode,
    versions: field(o, 'versions', nonEmptySubsetOf([2, 3]), 'a non-empty list of 2 and 3') as (2 | 3)[],
    clusterBitsMin: min,
    clusterBitsMax: max,
    refcountBits: field(o, 'refcountBits', nonEmptySubsetOf(refcountWidths), `a non-empty list of ${refcountWidths.join(', ')}`) as number[],
    ops: mode === 'read-only' ? [] : ops,
    features: field(o, 'features', subsetOf(featureNames), `a list of ${featureNames.join(', ')}`) as FeatureName[],
  };
}

/**
 * The sequences the gate may draw for this implementation. For a writer: its
 * versions, geometry and op kinds. For a reader the images come from another
 * producer, so only what it can read narrows them (compressed clusters only
 * when it declares `compressed`).
 */
export function sequenceConstraintsFor(caps: Capabilities): SequenceConstraints {
  const image = {
    versions: caps.versions,
    clusterBitsMin: caps.clusterBitsMin,
    clusterBitsMax: caps.clusterBitsMax,
    // version 2 images always have 16-bit refcounts; the list bounds version 3's
    refcountBits: caps.refcountBits,
    // what the implementation does not declare is never drawn
    ...(caps.features.includes('extended-l2') ? {} : { extendedL2Percent: 0 }),
    zstd: caps.features.includes('zstd'),
  };
  const allowed: readonly OpKind[] = caps.mode === 'read-write' ? caps.ops : opKinds.filter((k) => k !== 'writeCompressed' || caps.features.includes('compressed'));
  const off: CommandKind[] = commandKinds.filter((k): k is Exclude<CommandKind, 'read'> => k !== 'read').filter((k) => !allowed.includes(k));
  return { image, swarm: { off }, chains: drawsChains(caps) };
}

/** What the gate leaves out for this implementation, one phrase each (empty when nothing is). */
export function leftOut(caps: Capabilities): string[] {
  const out: string[] = [];
  const missingVersions = ([2, 3] as const).filter((v) => !caps.versions.includes(v));
  if (missingVersions.length > 0) out.push(`version ${missingVersions.join(', ')} images`);
  if (caps.clusterBitsMin > clusterBitsMin || caps.clusterBitsMax < clusterBitsMax) out.push(`cluster bits outside ${caps.clusterBitsMin}..${caps.clusterBitsMax}`);
  const widths = refcountWidths.filter((w) => !caps.refcountBits.includes(w));
  if (widths.length > 0) out.push(`refcount widths ${widths.join(', ')}`);
  const constraints = sequenceConstraintsFor(caps);
  const ops = constraints.swarm?.off ?? [];
  if (ops.length > 0) out.push(`ops ${ops.join(', ')}`);
  // a reader is given single images: backing chains are drawn for writers only
  const drawable = caps.mode === 'read-write' ? exercisedFeatures : exercisedFeatures.filter((f) => f !== 'backing');
  const notExercised = featureNames.filter((f) => !drawable.includes(f));
  const undeclared = drawable.filter((f) => !caps.features.includes(f));
  if (undeclared.length > 0) out.push(`features not declared: ${undeclared.join(', ')}`);
  if (caps.mode === 'read-write' && caps.features.includes('backing') && !drawsChains(caps)) out.push(`backing chains (ops not declared: ${chainOpKinds.filter((k) => !caps.ops.includes(k)).join(', ')})`);
  out.push(`features the gate does not draw yet: ${notExercised.join(', ')}`);
  return out;
}
