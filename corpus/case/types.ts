// The corpus case format: one JSON file per case (corpus/README.md documents it
// field by field). A case is plain data so it diffs well in review and replays
// byte for byte: the operation list is model/ops.ts Op objects, the image damage
// is a list of structural mutations plus the concrete byte patches they resolved to.
import type { ImageOptions, Op } from '../../model/ops.js';
import type { ImplName } from '../../properties/driver.js';
import type { Step } from '../../properties/steps.js';

/** Bumped when a field changes meaning; the loader refuses other versions. */
export const caseFormatVersion = 1 as const;

export type CaseKind = 'property-failure' | 'malformed-image';
export const caseKinds: readonly CaseKind[] = ['property-failure', 'malformed-image'];

/**
 * Which implementation the case was found against (and replays against first):
 * `ts`, `qemu`, `canary`, or `cmd:<command line>` for a program speaking
 * docs/protocol.md (run from the repository's root when the path is relative).
 */
export type Implementation = ImplName;

/**
 * - open: still fails; the regression test asserts it still reproduces (so a fix
 *   is noticed and the status is moved to `fixed` on purpose).
 * - fixed: must pass; a failure is a regression.
 * - known-qemu-divergence: QEMU is wrong (docs/semantics.md); must still
 *   reproduce against QEMU and must pass against our engine.
 * - known-divergence: the case's implementation is wrong where the model (and
 *   QEMU) are right (e.g. docs/libqcow-findings.md); must still reproduce
 *   against it, and its gate reports it as known instead of failing.
 */
export type CaseStatus = 'open' | 'fixed' | 'known-qemu-divergence' | 'known-divergence';
export const caseStatuses: readonly CaseStatus[] = ['open', 'fixed', 'known-qemu-divergence', 'known-divergence'];

/** What a cmd: implementation said of itself in its handshake (docs/protocol.md). */
export interface AdapterIdentity {
  readonly name: string;
  readonly version: string;
}

/** Who found the case, with what. No field here enters the file name. */
export interface Provenance {
  /** `qcow2-verify <version>` */
  readonly tool: string;
  /** The version of the qemu-img that ran, as its `--version` prints it (e.g. `7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`; older cases `7.2.22`), or `unknown`. */
  readonly qemu: string;
  /** The version of the qemu-io that ran, when known (QEMU_IO may name another build than QEMU_IMG). */
  readonly qemuIo?: string;
  /** ISO 8601 date (day) the case was first written. */
  readonly date: string;
  /** The command that found it, for the record. */
  readonly command?: string;
}

interface CaseCommon {
  readonly format: typeof caseFormatVersion;
  readonly kind: CaseKind;
  readonly implementation: Implementation;
  /** A cmd: implementation's handshake name and version: its gate knows the case by the name, whatever the command line. */
  readonly adapter?: AdapterIdentity;
  /**
   * The case's status against further implementations, by `--impl` name (e.g.
   * our engine must pass a libqcow divergence: `{ "ts": "fixed" }`). Absent: none.
   */
  readonly statuses?: Readonly<Record<string, CaseStatus>>;
  /** Property (registry name) that failed; `malformedImages` for image cases. */
  readonly property: string;
  /** Stable across runs: property + first divergence kind + op/mutation kind. */
  readonly signature: string;
  readonly status: CaseStatus;
  /** One or two sentences: what the case shows and why it has its status. */
  readonly description: string;
  /** The failure message as first seen (informative; replay recomputes it). */
  readonly message: string;
  /** fast-check seed and path of the run that found it (0 and "" for hand-written cases). */
  readonly seed: number;
  readonly path: string;
  readonly found: Provenance;
}

export interface PropertyFailureCase extends CaseCommon {
  readonly kind: 'property-failure';
  readonly options: ImageOptions;
  /** The shrunk sequence: operations and guest reads (`{ kind: 'read', offset, length }`). */
  readonly ops: readonly Step[];
}

/** A valid image built deterministically: `qemu-img create` with these options, then the ops through qemu-io / qemu-img snapshot. */
export interface BaseImageSpec {
  readonly options: ImageOptions;
  readonly ops: readonly Op[];
}

/** A header field the mutator can set, named as in the qcow2 spec. */
export type HeaderField =
  | 'magic'
  | 'version'
  | 'backing_file_offset'
  | 'backing_file_size'
  | 'cluster_bits'
  | 'size'
  | 'crypt_method'
  | 'l1_size'
  | 'l1_table_offset'
  | 'refcount_table_offset'
  | 'refcount_table_clusters'
  | 'nb_snapshots'
  | 'snapshots_offset'
  | 'incompatible_features'
  | 'compatible_features'
  | 'autoclear_features'
  | 'refcount_order'
  | 'header_length'
  | 'compression_type';

export type TableName = 'l1' | 'l2' | 'reftable' | 'refblock' | 'snapshot-l1';

export type SnapshotField =
  | 'l1_table_offset'
  | 'l1_size'
  | 'id_str_size'
  | 'name_size'
  | 'vm_state_size'
  | 'extra_data_size'
  | 'disk_size';

/**
 * One structural mutation. Indexes are taken modulo the number of targets that
 * exist in the base image, so every mutation resolves; one that finds no target
 * (e.g. an L2 entry in an empty image) resolves to no patch. Values are decimal
 * or 0x-hex strings because 64-bit fields do not fit a JSON number; a value
 * starting with + or - is relative to the base image's value. A byte-flip offset
 * and a truncation are taken relative to the file length (modulo, per mille).
 */
export type Mutation =
  | { readonly kind: 'header-field'; readonly field: HeaderField; readonly value: string }
  | { readonly kind: 'feature-bit'; readonly set: 'incompatible' | 'compatible' | 'autoclear'; readonly bit: number }
  | { readonly kind: 'extension'; readonly index: number; readonly type?: number; readonly length?: number }
  | { readonly kind: 'table-entry'; readonly table: TableName; readonly index: number; readonly xor: string }
  | { readonly kind: 'snapshot-field'; readonly snapshot: number; readonly field: SnapshotField; readonly value: string }
  | { readonly kind: 'truncate'; readonly keepPermille: number }
  | { readonly kind: 'byte-flip'; readonly offset: number; readonly xor: number };

export type MutationKind = Mutation['kind'];

/** A concrete change to the base image: bytes written at an offset. */
export interface Patch {
  readonly offset: number;
  readonly hex: string;
}

/** What the malformed-image fuzzer saw; each is a finding of its own kind. */
export type ImageFindingKind =
  | 'untyped-exception'
  | 'assertion'
  | 'hang'
  | 'memory'
  | 'open-disagreement'
  | 'check-disagreement';
export const imageFindingKinds: readonly ImageFindingKind[] = [
  'untyped-exception',
  'assertion',
  'hang',
  'memory',
  'open-disagreement',
  'check-disagreement',
];

export interface MalformedImageCase extends CaseCommon {
  readonly kind: 'malformed-image';
  readonly finding: ImageFindingKind;
  readonly base: BaseImageSpec;
  readonly mutations: readonly Mutation[];
  /** The mutations resolved against the base image, applied in order. */
  readonly patches: readonly Patch[];
  /** File length after the mutations (truncation), or absent when unchanged. */
  readonly truncateTo?: number;
  /** Verdict summaries as first seen, e.g. `{ ours: "opens; check corrupt", qemu: "info ok; check leaks" }`. */
  readonly verdicts: { readonly ours: string; readonly qemu: string };
}

export type CorpusCase = PropertyFailureCase | MalformedImageCase;
