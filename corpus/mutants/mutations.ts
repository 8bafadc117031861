// Structure-aware mutations of a valid image, drawn by fast-check (so each
// mutant is reproducible from its seed) and resolved against the base image's
// layout into concrete byte patches. The value pools aim at the limits QEMU
// checks (digest §2, §4, §5, §6, §10): each boundary value and its neighbours,
// reserved and flag bits, offsets past the end of the file, plus random values.
import fc from 'fast-check';
import type { HeaderField, Mutation, Patch, SnapshotField, TableName } from '../case/types.js';
import { headerFields, locate, readBE, snapshotFields, type ImageLayout } from './layout.js';

const u64Max = 2n ** 64n - 1n;

/** Interesting absolute values per header field (beyond the generic ones). */
const headerSpecials: Readonly<Partial<Record<HeaderField, readonly bigint[]>>> = {
  magic: [0x514649fan, 0n],
  version: [1n, 2n, 3n, 4n],
  cluster_bits: [8n, 9n, 12n, 16n, 21n, 22n, 63n, 64n],
  crypt_method: [1n, 2n, 3n],
  refcount_order: [0n, 3n, 6n, 7n],
  header_length: [72n, 103n, 104n, 105n, 112n, 113n, 4096n],
  l1_size: [0n, 0x10000000n, 0x7fffffffn, 0xffffffffn],
  refcount_table_clusters: [0n, 0x1000n, 0xffffffffn],
  nb_snapshots: [1n, 65536n, 65537n, 0xffffffffn],
  size: [1n, 511n, 2n ** 53n, 2n ** 63n],
  backing_file_offset: [8n, 0x200n, 0x1000n],
  backing_file_size: [1023n, 1024n, 0xffffffffn],
  compression_type: [1n, 2n],
};

const genericValues: readonly bigint[] = [0n, 1n, 0x1ffn, 0x200n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 2n ** 56n, u64Max];

const valueArb = (specials: readonly bigint[]): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...specials, ...genericValues).map((v) => `0x${v.toString(16)}`) },
    { weight: 3, arbitrary: fc.integer({ min: -4, max: 4 }).filter((d) => d !== 0).map((d) => (d > 0 ? `+${d}` : `${d}`)) },
    { weight: 1, arbitrary: fc.constantFrom(512, 4096, 65536).map((d) => `+${d}`) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: u64Max }).map((v) => `0x${v.toString(16)}`) },
  );

const headerFieldArb: fc.Arbitrary<Mutation> = fc
  .constantFrom(...(Object.keys(headerFields) as HeaderField[]))
  .chain((field) => valueArb(headerSpecials[field] ?? []).map((value) => ({ kind: 'header-field' as const, field, value })));

/** Entry xor masks: COPIED, COMPRESSED, ZERO, reserved bits, misalignment, far offsets. */
const entryMasks: readonly bigint[] = [1n << 63n, 1n << 62n, 1n, 2n, 1n << 8n, 1n << 9n, 1n << 12n, 1n << 16n, 1n << 40n, 1n << 56n, 1n << 55n];

const tableEntryArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant('table-entry' as const),
  table: fc.constantFrom<TableName>('l1', 'l2', 'l2', 'reftable', 'refblock', 'snapshot-l1'),
  index: fc.nat({ max: 64 }),
  xor: fc
    .oneof(
      { weight: 4, arbitrary: fc.constantFrom(...entryMasks) },
      { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: u64Max }) },
    )
    .map((v) => `0x${v.toString(16)}`),
});

const snapshotFieldArb: fc.Arbitrary<Mutation> = fc
  .constantFrom(...(Object.keys(snapshotFields) as SnapshotField[]))
  .chain((field) =>
    fc.record({
      kind: fc.constant('snapshot-field' as const),
      snapshot: fc.nat({ max: 3 }),
      field: fc.constant(field),
      value: valueArb(field === 'extra_data_size' ? [0n, 8n, 15n, 16n, 1024n, 1025n] : [0n, 0x200n]),
    }),
  );

const extensionTypes = [0x00000000, 0xe2792aca, 0x6803f857, 0x23852875, 0x0537be77, 0x44415441, 0x12345678];

const extensionArb: fc.Arbitrary<Mutation> = fc
  .record(
    {
      kind: fc.constant('extension' as const),
      index: fc.nat({ max: 4 }),
      type: fc.constantFrom(...extensionTypes),
      length: fc.constantFrom(0, 1, 7, 8, 16, 24, 47, 48, 384, 4096, 65536, 0xffffffff),
    },
    { requiredKeys: ['kind', 'index'] },
  )
  .filter((m) => m.type !== undefined || m.length !== undefined);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 6, arbitrary: headerFieldArb },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('feature-bit' as const),
      set: fc.constantFrom('incompatible' as const, 'compatible' as const, 'autoclear' as const),
      bit: fc.oneof({ weight: 4, arbitrary: fc.nat({ max: 5 }) }, { weight: 1, arbitrary: fc.nat({ max: 63 }) }),
    }),
  },
  { weight: 2, arbitrary: extensionArb },
  { weight: 8, arbitrary: tableEntryArb },
  { weight: 3, arbitrary: snapshotFieldArb },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keepPermille: fc.nat({ max: 999 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('byte-flip' as const), offset: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
);

export interface ResolvedMutant {
  readonly bytes: Uint8Array;
  readonly patches: readonly Patch[];
  readonly truncateTo?: number;
}

function toBytes(value: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let v = BigInt.asUintN(width * 8, value);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function resolveValue(text: string, current: bigint): bigint {
  if (text.startsWith('+')) return current + BigInt(text.slice(1));
  if (text.startsWith('-')) return current - BigInt(text.slice(1));
  return BigInt(text);
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The patch one mutation makes, given the current bytes (earlier mutations applied). */
function patchFor(m: Mutation, layout: ImageLayout, bytes: Uint8Array): Patch | undefined {
  const setField = (offset: number, width: number, value: string): Patch => ({
    offset,
    hex: hex(toBytes(resolveValue(value, readBE(bytes, offset, width)), width)),
  });
  const xorAt = (offset: number, width: number, mask: bigint): Patch => ({ offset, hex: hex(toBytes(readBE(bytes, offset, width) ^ mask, width)) });
  switch (m.kind) {
    case 'header-field': {
      const [offset, width] = headerFields[m.field];
      return setField(offset, width, m.value);
    }
    case 'feature-bit': {
      const offset = headerFields[`${m.set}_features`][0];
      return xorAt(offset, 8, 1n << BigInt(m.bit % 64));
    }
    case 'extension': {
      const ext = layout.extensions[m.index % Math.max(1, layout.extensions.length)];
      if (ext === undefined) return undefined;
      const type = m.type ?? ext.type;
      const length = m.length ?? ext.length;
      return { offset: ext.offset, hex: hex(toBytes((BigInt(type) << 32n) | BigInt(length), 8)) };
    }
    case 'table-entry': {
      // Even indexes aim at live entries (where damage matters most), odd ones at any entry.
      const entries = layout.entries[m.table];
      const live = layout.nonZeroCount[m.table];
      const offset = m.index % 2 === 0 && live > 0 ? entries[(m.index / 2) % live] : entries[m.index % Math.max(1, entries.length)];
      if (offset === undefined) return undefined;
      const width = m.table === 'refblock' ? Math.max(1, layout.refcountBits / 8) : 8;
      return xorAt(offset, width, BigInt(m.xor));
    }
    case 'snapshot-field': {
      const entry = layout.snapshotEntries[m.snapshot % Math.max(1, layout.snapshotEntries.length)];
      if (entry === undefined) return undefined;
      const [offset, width] = snapshotFields[m.field];
      return setField(entry + offset, width, m.value);
    }
    case 'byte-flip': {
      if (layout.fileLength === 0) return undefined;
      return xorAt(m.offset % layout.fileLength, 1, BigInt(m.xor));
    }
    case 'truncate':
      return undefined;
    default: {
      const never: never = m;
      throw new Error(`unhandled mutation ${JSON.stringify(never)}`);
    }
  }
}

/** Applies patches (extending the file with zeros if one reaches past its end), then truncation. */
export function applyPatches(base: Uint8Array, patches: readonly Patch[], truncateTo?: number): Uint8Array {
  let end = base.length;
  for (const p of patches) end = Math.max(end, p.offset + p.hex.length / 2);
  const out = new Uint8Array(end);
  out.set(base);
  for (const p of patches) {
    for (let i = 0; i < p.hex.length / 2; i++) out[p.offset + i] = Number.parseInt(p.hex.slice(2 * i, 2 * i + 2), 16);
  }
  return truncateTo === undefined ? out : out.slice(0, Math.min(truncateTo, out.length));
}

/** Resolves mutations against a valid base image: the patches, the truncation and the mutant bytes. */
export function resolveMutations(base: Uint8Array, mutations: readonly Mutation[]): ResolvedMutant {
  const layout = locate(base);
  const patches: Patch[] = [];
  let bytes = base;
  let truncateTo: number | undefined;
  for (const m of mutations) {
    if (m.kind === 'truncate') {
      truncateTo = Math.min(truncateTo ?? base.length, Math.floor((base.length * m.keepPermille) / 1000));
      continue;
    }
    const patch = patchFor(m, layout, bytes);
    if (patch === undefined) continue;
    patches.push(patch);
    bytes = applyPatches(bytes, [patch]);
  }
  return { bytes: applyPatches(base, patches, truncateTo), patches, ...(truncateTo === undefined ? {} : { truncateTo }) };
}
