// Loading a case file: JSON in, a typed CorpusCase out, or a CorpusFormatError
// naming the file, the field, what was found and what was expected. A corpus
// is edited by hand (status, description), so the loader is strict and precise.
import { opKinds, type ImageOptions, type Op } from '../../model/ops.js';
import { isImplName, type ImplName } from '../../properties/driver.js';
import type { Step } from '../../properties/steps.js';
import type { FaultableOp, FaultStep } from '../../properties/faults/fault-step.js';
import { blkdebugEvents, blkdebugOccurrenceMax } from '../../oracle/index.js';
import {
  caseFormatVersion,
  caseStatuses,
  imageFindingKinds,
  type BaseImageSpec,
  type CorpusCase,
  type Mutation,
  type Patch,
  type Provenance,
} from './types.js';

export class CorpusFormatError extends Error {
  constructor(
    readonly source: string,
    readonly field: string,
    readonly value: string,
    readonly expected: string,
  ) {
    super(`${source}: field ${field} is ${value}, expected ${expected}`);
    this.name = 'CorpusFormatError';
  }
}

type Json = Record<string, unknown>;

class Reader {
  constructor(
    readonly source: string,
    readonly prefix: string,
    readonly obj: Json,
  ) {}

  private fail(key: string, value: unknown, expected: string): never {
    const shown = value === undefined ? 'missing' : JSON.stringify(value)?.slice(0, 80) ?? String(value);
    throw new CorpusFormatError(this.source, `${this.prefix}${key}`, shown, expected);
  }

  string(key: string): string {
    const v = this.obj[key];
    return typeof v === 'string' ? v : this.fail(key, v, 'a string');
  }

  optionalString(key: string): string | undefined {
    return this.obj[key] === undefined ? undefined : this.string(key);
  }

  integer(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.obj[key];
    if (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max) return v as number;
    return this.fail(key, v, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in ${min}..${max}`);
  }

  /** fast-check seeds are signed 32-bit integers. */
  seed(key: string): number {
    const v = this.obj[key];
    return Number.isSafeInteger(v) && (v as number) >= -(2 ** 31) && (v as number) < 2 ** 32 ? (v as number) : this.fail(key, v, 'a 32-bit integer');
  }

  boolean(key: string): boolean {
    const v = this.obj[key];
    return typeof v === 'boolean' ? v : this.fail(key, v, 'a boolean');
  }

  optionalBoolean(key: string): boolean | undefined {
    return this.obj[key] === undefined ? undefined : this.boolean(key);
  }

  /** `ts`, `qemu`, `canary` or `cmd:<command line>`. */
  implementation(key: string): ImplName {
    const v = this.obj[key];
    return typeof v === 'string' && isImplName(v) ? v : this.fail(key, v, 'ts, qemu, canary or cmd:<command line>');
  }

  /** An object key that must name an implementation. */
  implementationKey(key: string): ImplName {
    return isImplName(key) ? key : this.fail(key, key, 'an implementation name (ts, qemu, canary or cmd:<command line>) as the key');
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.obj[key];
    return (allowed as readonly unknown[]).includes(v) ? (v as T) : this.fail(key, v, `one of ${allowed.join(', ')}`);
  }

  object(key: string): Reader {
    const v = this.obj[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, v, 'an object');
    return new Reader(this.source, `${this.prefix}${key}.`, v as Json);
  }

  array(key: string): Reader[] {
    const v = this.obj[key];
    if (!Array.isArray(v)) this.fail(key, v, 'an array');
    return (v as unknown[]).map((item, i) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) this.fail(`${key}[${i}]`, item, 'an object');
      return new Reader(this.source, `${this.prefix}${key}[${i}].`, item as Json);
    });
  }

  /** The raw object, after its fields were checked (objects are plain data). */
  raw<T>(): T {
    return this.obj as T;
  }
}

function parseOptions(r: Reader): ImageOptions {
  const version = r.integer('version', 2);
  if (version !== 2 && version !== 3) throw new CorpusFormatError(r.source, `${r.prefix}version`, String(version), '2 or 3');
  return {
    version,
    clusterBits: r.integer('clusterBits', 9),
    refcountBits: r.integer('refcountBits', 1),
    lazyRefcounts: r.boolean('lazyRefcounts'),
    virtualSize: r.integer('virtualSize'),
    ...compressionTypeOf(r, version),
    ...extendedL2Of(r, version),
  };
}

/** An absent extendedL2 is false (cases saved before subclusters existed); true needs version 3. */
function extendedL2Of(r: Reader, version: 2 | 3): Pick<ImageOptions, 'extendedL2'> {
  const extendedL2 = r.optionalBoolean('extendedL2');
  if (extendedL2 === undefined || !extendedL2) return {};
  if (version !== 3) throw new CorpusFormatError(r.source, `${r.prefix}extendedL2`, 'true', 'false (version 2)');
  return { extendedL2 };
}

/** An absent compressionType is zlib (cases saved before the field existed); zstd needs version 3. */
function compressionTypeOf(r: Reader, version: 2 | 3): Pick<ImageOptions, 'compressionType'> {
  const type = r.optionalString('compressionType');
  if (type === undefined) return {};
  if (type !== 'zlib' && (type !== 'zstd' || version !== 3)) {
    throw new CorpusFormatError(r.source, `${r.prefix}compressionType`, JSON.stringify(type), version === 3 ? 'zlib or zstd' : 'zlib (version 2)');
  }
  return { compressionType: type };
}

/** A sequence step: an operation, or a guest read checked against the model. */
/** The ops a fault step carries (properties/faults/fault-step.ts: FaultableOp). */
const faultableKinds = ['write', 'writeCompressed', 'writeZeroes', 'discard', 'resize', 'flush', 'snapshotCreate', 'snapshotDelete', 'snapshotRevert'] as const;

function parseFaultableOp(r: Reader): FaultableOp {
  r.oneOf('kind', faultableKinds);
  return parseOp(r) as FaultableOp;
}

function parseFaultStep(r: Reader): FaultStep {
  if (r.oneOf('kind', ['crash', 'ioError'] as const) === 'crash') {
    r.seed('seed');
    if (r.obj.during !== undefined) {
      const during = r.object('during');
      parseFaultableOp(during.object('op'));
      during.oneOf('access', ['write', 'flush'] as const);
      during.integer('nth', 1);
      if (during.obj.event !== undefined) during.oneOf('event', blkdebugEvents);
    }
    return r.raw<FaultStep>();
  }
  parseFaultableOp(r.object('op'));
  r.oneOf('access', ['read', 'write', 'flush'] as const);
  r.integer('nth', 1);
  r.oneOf('errno', ['EIO', 'ENOSPC'] as const);
  r.boolean('persistent');
  if (r.obj.event !== undefined) r.oneOf('event', blkdebugEvents);
  if (r.obj.occurrence !== undefined) r.integer('occurrence', 1, blkdebugOccurrenceMax);
  return r.raw<FaultStep>();
}

function parseStep(r: Reader): Step {
  if (r.obj.kind === 'crash' || r.obj.kind === 'ioError') return parseFaultStep(r);
  if (r.obj.kind !== 'read') return parseOp(r);
  r.integer('offset');
  r.integer('length', 1);
  return r.raw<Step>();
}

function parseOp(r: Reader): Op {
  const kind = r.oneOf('kind', opKinds);
  switch (kind) {
    case 'write':
      r.integer('offset');
      r.integer('length', 1);
      r.integer('pattern');
      if (r.obj.seed !== undefined) r.seed('seed');
      return r.raw<Op>();
    case 'writeCompressed':
      r.integer('offset');
      r.integer('length', 1);
      r.integer('pattern');
      if (r.obj.seed !== undefined) r.seed('seed');
      return r.raw<Op>();
    case 'writeZeroes':
      r.integer('offset');
      r.integer('length', 1);
      r.boolean('unmap');
      return r.raw<Op>();
    case 'discard':
      r.integer('offset');
      r.integer('length', 1);
      return r.raw<Op>();
    case 'resize':
      r.integer('size');
      return r.raw<Op>();
    case 'snapshotCreate':
    case 'snapshotRevert':
    case 'snapshotDelete':
      r.string('name');
      return r.raw<Op>();
    case 'flush':
    case 'reopen':
    case 'commit':
      return r.raw<Op>();
    case 'rebase':
      r.integer('depth');
      r.boolean('unsafe');
      return r.raw<Op>();
    case 'createOverlay':
      return { kind, backingFormat: r.oneOf('backingFormat', ['qcow2', 'raw'] as const), options: parseOptions(r.object('options')) };
    default: {
      const never: never = kind;
      throw new Error(`unhandled op kind ${String(never)}`);
    }
  }
}

function parseMutation(r: Reader): Mutation {
  const kind = r.oneOf('kind', ['header-field', 'feature-bit', 'extension', 'table-entry', 'snapshot-field', 'truncate', 'byte-flip'] as const);
  switch (kind) {
    case 'header-field':
      r.string('field');
      r.string('value');
      break;
    case 'feature-bit':
      r.oneOf('set', ['incompatible', 'compatible', 'autoclear'] as const);
      r.integer('bit');
      break;
    case 'extension':
      r.integer('index');
      if (r.obj.type !== undefined) r.integer('type');
      if (r.obj.length !== undefined) r.integer('length');
      break;
    case 'table-entry':
      r.oneOf('table', ['l1', 'l2', 'reftable', 'refblock', 'snapshot-l1'] as const);
      r.integer('index');
      r.string('xor');
      break;
    case 'snapshot-field':
      r.integer('snapshot');
      r.string('field');
      r.string('value');
      break;
    case 'truncate':
      r.integer('keepPermille');
      break;
    case 'byte-flip':
      r.integer('offset');
      r.integer('xor', 1);
      break;
    default: {
      const never: never = kind;
      throw new Error(`unhandled mutation kind ${String(never)}`);
    }
  }
  return r.raw<Mutation>();
}

function parsePatch(r: Reader): Patch {
  const offset = r.integer('offset');
  const hex = r.string('hex');
  if (!/^([0-9a-f]{2})+$/.test(hex)) throw new CorpusFormatError(r.source, `${r.prefix}hex`, JSON.stringify(hex.slice(0, 40)), 'lower-case hex bytes');
  return { offset, hex };
}

function parseProvenance(r: Reader): Provenance {
  const command = r.optionalString('command');
  const qemuIo = r.optionalString('qemuIo');
  return {
    tool: r.string('tool'),
    qemu: r.string('qemu'),
    ...(qemuIo === undefined ? {} : { qemuIo }),
    date: r.string('date'),
    ...(command === undefined ? {} : { command }),
  };
}

/** Validates parsed JSON as a case; `source` (usually the file name) prefixes every error. */
export function parseCase(json: unknown, source: string): CorpusCase {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CorpusFormatError(source, '(root)', typeof json, 'an object');
  const r = new Reader(source, '', json as Json);
  if (r.obj.format !== caseFormatVersion) throw new CorpusFormatError(source, 'format', JSON.stringify(r.obj.format), String(caseFormatVersion));
  const adapter = r.obj.adapter === undefined ? undefined : r.object('adapter');
  const statuses = r.obj.statuses === undefined ? undefined : r.object('statuses');
  const common = {
    format: caseFormatVersion,
    implementation: r.implementation('implementation'),
    ...(adapter === undefined ? {} : { adapter: { name: adapter.string('name'), version: adapter.string('version') } }),
    ...(statuses === undefined ? {} : { statuses: Object.fromEntries(Object.keys(statuses.obj).map((impl) => [statuses.implementationKey(impl), statuses.oneOf(impl, caseStatuses)])) }),
    property: r.string('property'),
    signature: r.string('signature'),
    status: r.oneOf('status', caseStatuses),
    description: r.string('description'),
    message: r.string('message'),
    seed: r.seed('seed'),
    path: r.string('path'),
    found: parseProvenance(r.object('found')),
  };
  const kind = r.oneOf('kind', ['property-failure', 'malformed-image'] as const);
  if (kind === 'property-failure') {
    return { ...common, kind, options: parseOptions(r.object('options')), ops: r.array('ops').map(parseStep) };
  }
  const base = r.object('base');
  const baseSpec: BaseImageSpec = { options: parseOptions(base.object('options')), ops: base.array('ops').map(parseOp) };
  const verdicts = r.object('verdicts');
  const truncateTo = r.obj.truncateTo === undefined ? undefined : r.integer('truncateTo');
  return {
    ...common,
    kind,
    finding: r.oneOf('finding', imageFindingKinds),
    base: baseSpec,
    mutations: r.array('mutations').map(parseMutation),
    patches: r.array('patches').map(parsePatch),
    ...(truncateTo === undefined ? {} : { truncateTo }),
    verdicts: { ours: verdicts.string('ours'), qemu: verdicts.string('qemu') },
  };
}
