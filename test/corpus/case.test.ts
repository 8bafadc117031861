import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseCase, CorpusFormatError } from '../../corpus/case/parse.js';
import { serializeCase } from '../../corpus/case/serialize.js';
import { caseId, canonicalJson, propertyFailureSignature } from '../../corpus/case/identity.js';
import type { CorpusCase, MalformedImageCase, PropertyFailureCase } from '../../corpus/case/types.js';
import type { Op } from '../../model/ops.js';

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('write' as const), offset: fc.nat(), length: fc.integer({ min: 1, max: 1 << 20 }), pattern: fc.nat(255) }),
  fc.record({ kind: fc.constant('write' as const), offset: fc.nat(), length: fc.integer({ min: 1, max: 4096 }), pattern: fc.nat(255), seed: fc.integer() }),
  fc.record({ kind: fc.constant('writeZeroes' as const), offset: fc.nat(), length: fc.integer({ min: 1, max: 4096 }), unmap: fc.boolean() }),
  fc.record({ kind: fc.constant('discard' as const), offset: fc.nat(), length: fc.integer({ min: 1, max: 4096 }) }),
  fc.record({ kind: fc.constant('resize' as const), size: fc.nat() }),
  fc.record({ kind: fc.constantFrom('snapshotCreate' as const, 'snapshotRevert' as const, 'snapshotDelete' as const), name: fc.string() }),
  fc.record({ kind: fc.constantFrom('flush' as const, 'reopen' as const, 'commit' as const) }),
  fc.record({ kind: fc.constant('rebase' as const), depth: fc.nat(3), unsafe: fc.boolean() }),
  fc.record({
    kind: fc.constant('createOverlay' as const),
    backingFormat: fc.constantFrom('qcow2' as const, 'raw' as const),
    options: fc.record({ version: fc.constantFrom(2 as const, 3 as const), clusterBits: fc.integer({ min: 9, max: 21 }), refcountBits: fc.constant(16), lazyRefcounts: fc.boolean(), virtualSize: fc.nat() }),
  }),
);

const common = {
  format: 1 as const,
  implementation: 'ts' as const,
  status: 'open' as const,
  description: 'found by a test',
  message: 'read mismatch at 0x200',
  seed: 42,
  path: '3:1',
  found: { tool: 'qcow2-verify 0.1.0', qemu: '7.2.22', date: '2026-11-25' },
};

const propertyCaseArb: fc.Arbitrary<PropertyFailureCase> = fc.record({
  ops: fc.array(opArb, { maxLength: 8 }),
  clusterBits: fc.integer({ min: 9, max: 21 }),
  version: fc.constantFrom(2 as const, 3 as const),
  property: fc.constantFrom('readsAndOutcomes', 'structure'),
}).map(({ ops, clusterBits, version, property }) => ({
  ...common,
  kind: 'property-failure',
  property,
  signature: propertyFailureSignature(property, 'read-mismatch', ops[0]?.kind ?? 'none'),
  options: { version, clusterBits, refcountBits: 16, lazyRefcounts: false, virtualSize: 1 << 20 },
  ops,
}));

const imageCase: MalformedImageCase = {
  ...common,
  kind: 'malformed-image',
  property: 'malformedImages',
  signature: 'malformedImages/open-disagreement/ours=refuses,qemu=opens/header-field:l1_size',
  finding: 'open-disagreement',
  verdicts: { ours: 'refuses (format)', qemu: 'info ok' },
  base: { options: { version: 3, clusterBits: 9, refcountBits: 16, lazyRefcounts: false, virtualSize: 65536 }, ops: [] },
  mutations: [{ kind: 'header-field', field: 'l1_size', value: '0x7fffffff' }, { kind: 'truncate', keepPermille: 500 }],
  patches: [{ offset: 36, hex: '7fffffff' }],
  truncateTo: 1024,
};

describe('case format', () => {
  it('parse(serialize(c)) gives c back for property-failure cases', () => {
    fc.assert(
      fc.property(propertyCaseArb, (c) => {
        expect(parseCase(JSON.parse(serializeCase(c)), 'x.json')).toEqual(c);
      }),
    );
  });

  it('keeps extendedL2 (a case of an extended-L2 image must replay on one), and refuses it on version 2', () => {
    const options = { ...imageCase.base.options, version: 3 as const, clusterBits: 14, extendedL2: true };
    const extended = { ...imageCase, base: { ...imageCase.base, options } };
    expect(parseCase(JSON.parse(serializeCase(extended)), 'e.json')).toEqual(extended);
    const v2 = JSON.parse(serializeCase(extended));
    v2.base.options.version = 2;
    expect(() => parseCase(v2, 'e2.json')).toThrow(/extendedL2/);
  });

  it('reads a case without compressionType as zlib (saved before the field existed), and keeps zstd', () => {
    const saved = JSON.parse(serializeCase(imageCase));
    expect(saved.base.options.compressionType).toBeUndefined();
    expect(parseCase(saved, 'old.json')).toEqual(imageCase);
    const zstd = { ...imageCase, base: { ...imageCase.base, options: { ...imageCase.base.options, compressionType: 'zstd' as const } } };
    expect(parseCase(JSON.parse(serializeCase(zstd)), 'z.json')).toEqual(zstd);
    const v2zstd = JSON.parse(serializeCase(zstd));
    v2zstd.base.options.version = 2;
    expect(() => parseCase(v2zstd, 'c.json')).toThrow(/field base\.options\.compressionType is "zstd", expected zlib \(version 2\)/);
    v2zstd.base.options.compressionType = 'lz4';
    v2zstd.base.options.version = 3;
    expect(() => parseCase(v2zstd, 'c.json')).toThrow(/compressionType is "lz4", expected zlib or zstd/);
  });

  it('round-trips malformed-image cases', () => {
    expect(parseCase(JSON.parse(serializeCase(imageCase)), 'x.json')).toEqual(imageCase);
  });

  it('writes one op per line so a reproduction reads as a script', () => {
    const c = { ...imageCase, kind: 'property-failure' as const, options: imageCase.base.options, ops: [{ kind: 'flush' as const }, { kind: 'resize' as const, size: 512 }] };
    const { base: _b, mutations: _m, patches: _p, verdicts: _v, finding: _f, truncateTo: _t, ...pf } = c;
    const text = serializeCase(pf as CorpusCase);
    expect(text).toContain('"ops": [\n    {"kind":"flush"},\n    {"kind":"resize","size":512}\n  ]');
  });

  it('names the field, the value and what was expected when a case is malformed', () => {
    const bad = JSON.parse(serializeCase(imageCase));
    bad.patches[0].hex = 'XYZ';
    expect(() => parseCase(bad, 'c.json')).toThrow(CorpusFormatError);
    expect(() => parseCase(bad, 'c.json')).toThrow(/c\.json: field patches\[0\]\.hex is "XYZ", expected lower-case hex bytes/);
    const badStatus = { ...JSON.parse(serializeCase(imageCase)), status: 'closed' };
    expect(() => parseCase(badStatus, 'c.json')).toThrow(/field status is "closed", expected one of open, fixed, known-qemu-divergence/);
    const badOp = JSON.parse(serializeCase({ ...imageCase, base: { ...imageCase.base, ops: [{ kind: 'write', offset: -1, length: 1, pattern: 0 }] } }));
    expect(() => parseCase(badOp, 'c.json')).toThrow(/field base\.ops\[0\]\.offset is -1/);
    expect(() => parseCase({ ...JSON.parse(serializeCase(imageCase)), format: 2 }, 'c.json')).toThrow(/field format is 2, expected 1/);
  });
});

describe('cases of any implementation', () => {
  const libqcowCase = (c: PropertyFailureCase): PropertyFailureCase => ({
    ...c,
    implementation: 'cmd:/usr/bin/python3 adapters/libqcow/qcow2_verify_libqcow.py',
    adapter: { name: 'libqcow', version: '20201213' },
    status: 'known-divergence',
    statuses: { ts: 'fixed', 'cmd:node dist/cli/main.js adapter': 'fixed' },
  });

  it('round-trips a cmd: implementation with its handshake name and further statuses, and names the file after the name', () => {
    fc.assert(
      fc.property(propertyCaseArb.map(libqcowCase), (c) => {
        expect(parseCase(JSON.parse(serializeCase(c)), 'x.json')).toEqual(c);
        expect(caseId(c)).toMatch(/^libqcow-/);
      }),
    );
  });

  it('refuses an implementation that is none, and a statuses key that names none', () => {
    const c = JSON.parse(serializeCase(libqcowCase(fc.sample(propertyCaseArb, { seed: 1, numRuns: 1 })[0]!)));
    expect(() => parseCase({ ...c, implementation: 'cmd: ' }, 'c.json')).toThrow('c.json: field implementation is "cmd: ", expected ts, qemu, canary or cmd:<command line>');
    expect(() => parseCase({ ...c, statuses: { rust: 'fixed' } }, 'c.json')).toThrow('c.json: field statuses.rust is "rust", expected an implementation name');
    expect(() => parseCase({ ...c, statuses: { ts: 'gone' } }, 'c.json')).toThrow('c.json: field statuses.ts is "gone", expected one of open, fixed, known-qemu-divergence, known-divergence');
  });
});

describe('case identity', () => {
  it('derives the name from signature and reproduction only', () => {
    const other = { ...imageCase, found: { ...imageCase.found, date: '2030-01-01' }, seed: 7, path: '', message: 'x', status: 'fixed' as const };
    expect(caseId(other)).toBe(caseId(imageCase));
    expect(caseId({ ...imageCase, mutations: [imageCase.mutations[1]!] })).not.toBe(caseId(imageCase));
    expect(caseId({ ...imageCase, implementation: 'qemu' })).not.toBe(caseId(imageCase));
    expect(caseId(imageCase)).toMatch(/^ts-malformedImages-open-disagreement-ours-refuses-qemu-opens-header-field-l[-0-9a-z]*[0-9a-f]{16}$/);
  });

  it('does not depend on key order inside ops', () => {
    expect(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] })).toBe(canonicalJson({ a: [{ x: 1, y: 2 }], b: 1 }));
  });

  it('keeps offsets out of signatures', () => {
    expect(propertyFailureSignature('readsAndOutcomes', 'read mismatch', 'write')).toBe('readsAndOutcomes/read-mismatch/write');
  });
});
