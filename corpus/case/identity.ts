// Names and signatures. A case's file name comes from its content — a hash of
// the signature and the minimal reproduction — so two campaigns that find the
// same case write the same file, and corpora merge by copying files.
// The signature is what deduplicates: stable across runs, free of offsets,
// seeds and timestamps, so the same bug found twice is recognised as known.
import { createHash } from 'node:crypto';
import type { CorpusCase, ImageFindingKind, MutationKind } from './types.js';

/** property + first divergence kind + op kind, e.g. `readsAndOutcomes/read-mismatch/resize`. */
export function propertyFailureSignature(property: string, divergenceKind: string, opKind: string): string {
  return [property, divergenceKind, opKind].map(slugPart).join('/');
}

/**
 * malformedImages + finding + detail (e.g. the error class or the two verdict
 * classes) + the distinct mutation labels, sorted (two xors of L1 entries are
 * the same kind of damage as one), e.g.
 * `malformedImages/open-disagreement/ours=refuses:format,qemu=opens/header-field:l1_size`.
 */
export function imageFindingSignature(finding: ImageFindingKind, detail: string, mutations: readonly string[]): string {
  const labels = [...new Set(mutations)].sort();
  return ['malformedImages', finding, detail, labels.join('+') || 'none'].map(slugPart).join('/');
}

/** Mutation label used in signatures: kind plus the field/table/set it targets, never offsets or values. */
export function mutationLabel(m: { kind: MutationKind; field?: string; table?: string; set?: string }): string {
  const target = m.field ?? m.table ?? m.set;
  return target === undefined ? m.kind : `${m.kind}:${target}`;
}

function slugPart(text: string): string {
  return text.replace(/[^A-Za-z0-9_.:=,+-]+/g, '-');
}

/** JSON with object keys sorted at every level: the same data always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** What must be equal for two cases to be the same case (the reproduction, not its provenance). */
export function reproduction(c: CorpusCase): unknown {
  return c.kind === 'property-failure'
    ? { implementation: c.implementation, property: c.property, options: c.options, ops: c.ops }
    : { implementation: c.implementation, base: c.base, mutations: c.mutations };
}

/** Deduplication key (`implementation`: implementationSlug): the same signature against another implementation is another case. */
export function dedupKey(implementation: string, signature: string): string {
  return `${implementation} ${signature}`;
}

/** The implementation as a file-name word: a cmd: one by its handshake name (its command line may be anything). */
export function implementationSlug(c: Pick<CorpusCase, 'implementation' | 'adapter'>): string {
  if (!c.implementation.startsWith('cmd:')) return c.implementation;
  const slug = (c.adapter?.name ?? 'cmd').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 24);
  return slug === '' ? 'cmd' : slug;
}

const idHashChars = 16;
const idSlugCharsMax = 72;

/** The file base name: readable slug of the signature, then a content hash. */
export function caseId(c: CorpusCase): string {
  const hash = createHash('sha256').update(`${c.signature}\n${canonicalJson(reproduction(c))}`).digest('hex').slice(0, idHashChars);
  const slug = c.signature
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, idSlugCharsMax)
    .replace(/-$/, '');
  return `${implementationSlug(c)}-${slug}-${hash}`;
}
