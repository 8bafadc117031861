// Judging one mutant: our verdict (engine open/read + model check, under the
// watchdog) against QEMU's (qemu-img info + qemu-img check). Crashes, assertion
// failures, hangs and blow-ups are findings whatever QEMU says; otherwise a
// disagreement is a finding unless it is one of the documented expected
// differences below (a feature QEMU supports that we refuse on purpose, or a
// check QEMU cannot run without something outside the image).
import type { ImageFindingKind } from '../case/types.js';
import { readBE } from './layout.js';
import type { CheckClass, OurVerdict, Thrown } from './our-verdict.js';
import type { QemuVerdict } from './qemu-verdict.js';
import type { WatchdogResult } from './watchdog.js';

/** Header facts the expected differences depend on (v3 feature fields exist only in v3 headers). */
export interface HeaderFacts {
  readonly version: number;
  readonly incompatible: bigint;
  readonly cryptMethod: number;
  readonly backingFileOffset: bigint;
}

export function headerFacts(bytes: Uint8Array): HeaderFacts {
  const version = Number(readBE(bytes, 4, 4));
  const v3 = version >= 3;
  return {
    version,
    incompatible: v3 ? readBE(bytes, 72, 8) : 0n,
    cryptMethod: Number(readBE(bytes, 32, 4)),
    backingFileOffset: readBE(bytes, 8, 8),
  };
}

export interface ExpectedDifference {
  readonly id: string;
  readonly description: string;
  /** Which comparison it excuses, given the header facts. */
  readonly open?: (h: HeaderFacts, ours: Thrown | undefined, qemuOpens: boolean) => boolean;
  readonly check?: (h: HeaderFacts, ours: CheckClass, qemu: string) => boolean;
}

const bit = (h: HeaderFacts, n: bigint) => (h.incompatible & (1n << n)) !== 0n;
const unsupported = (t: Thrown | undefined) => t?.kind === 'typed' && t.code === 'unsupported';

/** Every disagreement we accept, with the reason. Anything else is a finding. */
export const expectedDifferences: readonly ExpectedDifference[] = [
  {
    id: 'extended-l2',
    description: 'incompatible bit 4 (extended L2 entries): QEMU supports it; our engine refuses it as unsupported and the model does not decode subclusters (cannot-check).',
    open: (h, ours, qemuOpens) => bit(h, 4n) && qemuOpens && unsupported(ours),
    check: (h, ours) => bit(h, 4n) && ours === 'cannot-check',
  },
  {
    id: 'external-data-file',
    description: 'incompatible bit 2 (external data file): qemu-img info opens the header without the data file but qemu-img check cannot run without it; our engine refuses the feature as unsupported.',
    open: (h, ours, qemuOpens) => bit(h, 2n) && qemuOpens && unsupported(ours),
    check: (h, _ours, qemu) => bit(h, 2n) && qemu === 'cannot-check',
  },
  {
    id: 'encryption',
    description: 'crypt_method 1 (AES) or 2 (LUKS): qemu-img info opens it, qemu-img check needs the key secret (cannot-check); our engine refuses encryption as unsupported.',
    open: (h, ours, qemuOpens) => (h.cryptMethod === 1 || h.cryptMethod === 2) && qemuOpens && unsupported(ours),
    check: (h, _ours, qemu) => (h.cryptMethod === 1 || h.cryptMethod === 2) && qemu === 'cannot-check',
  },
  {
    id: 'backing-file',
    description: 'a backing file name (backing_file_offset != 0): QEMU opens the backing chain and fails because the (garbage) file does not exist, so qemu-img check cannot run; our checker judges the image alone.',
    check: (h, _ours, qemu) => h.backingFileOffset !== 0n && qemu === 'cannot-check',
  },
];

export interface ImageFinding {
  readonly finding: ImageFindingKind;
  /** Signature detail: phase and error class, or the two verdict classes. */
  readonly detail: string;
  /**
   * For an open disagreement, what was refused and why, free of values: our
   * refusal's code and field, or QEMU's refusal (see `refusalKind`). The signature
   * then uses it instead of the mutation labels, which may include incidental ones.
   */
  readonly refusal?: string;
  readonly message: string;
}

/** Longest refusal kind kept in a signature. */
const refusalKindCharsMax = 64;

/**
 * A refusal without its values: numbers become `#` and anything after a `;` (a
 * note such as stricterThanQemu) is dropped, so two images refused for the same
 * reason at different offsets or with different values give the same kind.
 */
export function refusalKind(text: string): string {
  const head = text.split(';')[0] ?? '';
  return head.replace(/\b(0x[0-9a-f]+|\d+)\b/gi, '#').replace(/\s+/g, ' ').trim().slice(0, refusalKindCharsMax);
}

function refusalOf(ours: Thrown | undefined, qemu: QemuVerdict): string {
  if (ours === undefined) return `qemu:${refusalKind(qemu.info.ok ? '' : qemu.info.message.replace(/^Could not open '[^']*': /, ''))}`;
  if (ours.kind !== 'typed') return ours.kind;
  return `${ours.code}:${refusalKind(ours.field ?? ours.message)}`;
}

export interface Judgement {
  readonly finding?: ImageFinding;
  /** Expected differences that excused a disagreement on this mutant. */
  readonly excused: readonly string[];
  readonly ours: string;
  readonly qemu: string;
}

function describeThrown(t: Thrown): string {
  return t.kind === 'typed' ? `${t.code}: ${t.message}` : `${t.kind === 'assertion' ? 'AssertionError' : t.name}: ${t.message}`;
}

export function summarizeOurs(result: WatchdogResult): string {
  if (result.kind !== 'verdict') return `${result.kind} in ${result.phase}${result.kind === 'hang' ? ` (${result.timeoutMs} ms)` : `: ${result.detail}`}`;
  const v = result.verdict;
  const open = v.open.ok ? 'opens' : `refuses (${describeThrown(v.open.error)})`;
  const read = v.read === undefined ? '' : v.read.ok ? `; reads ${v.read.bytesRead} bytes` : `; read fails (${describeThrown(v.read.error)})`;
  const check = v.check.ok ? `check ${v.check.verdict}` : `check throws (${describeThrown(v.check.error)})`;
  return `${open}${read}; ${check}`;
}

export function summarizeQemu(q: QemuVerdict): string {
  return `info ${q.info.ok ? 'ok' : `fails (${q.info.message})`}; check ${q.check.verdict}`;
}

/** The first thrown error that is a finding by itself (assertion or untyped), with its phase. */
function crashIn(v: OurVerdict): { phase: string; thrown: Thrown } | undefined {
  const phases: Array<[string, Thrown | undefined]> = [
    ['open', v.open.ok ? undefined : v.open.error],
    ['read', v.read === undefined || v.read.ok ? undefined : v.read.error],
    ['check', v.check.ok ? undefined : v.check.error],
  ];
  for (const [phase, thrown] of phases) if (thrown !== undefined && thrown.kind !== 'typed') return { phase, thrown };
  return undefined;
}

export function judge(bytes: Uint8Array, ours: WatchdogResult, qemu: QemuVerdict): Judgement {
  const base = { ours: summarizeOurs(ours), qemu: summarizeQemu(qemu) };
  if (ours.kind === 'hang') return { ...base, excused: [], finding: { finding: 'hang', detail: ours.phase, message: `no verdict within ${ours.timeoutMs} ms (in ${ours.phase})` } };
  if (ours.kind === 'memory') return { ...base, excused: [], finding: { finding: 'memory', detail: ours.phase, message: `${ours.detail} (in ${ours.phase})` } };
  if (ours.kind === 'crash') return { ...base, excused: [], finding: { finding: 'untyped-exception', detail: `${ours.phase}:worker-crash`, message: ours.detail } };
  const v = ours.verdict;
  const crash = crashIn(v);
  if (crash !== undefined) {
    const kind = crash.thrown.kind === 'assertion' ? 'assertion' : 'untyped-exception';
    const name = crash.thrown.kind === 'untyped' ? crash.thrown.name : 'AssertionError';
    return { ...base, excused: [], finding: { finding: kind, detail: `${crash.phase}:${name}`, message: describeThrown(crash.thrown) } };
  }
  const facts = headerFacts(bytes);
  const excused: string[] = [];
  const ourRefusal = v.open.ok ? undefined : v.open.error;
  if (v.open.ok !== qemu.info.ok) {
    const excuse = expectedDifferences.find((d) => d.open?.(facts, ourRefusal, qemu.info.ok));
    if (excuse === undefined) {
      const detail = `ours=${v.open.ok ? 'opens' : `refuses:${ourRefusal?.kind === 'typed' ? ourRefusal.code : '?'}`},qemu=${qemu.info.ok ? 'opens' : 'refuses'}`;
      const refusal = refusalOf(ourRefusal, qemu);
      return { ...base, excused, finding: { finding: 'open-disagreement', detail, refusal, message: `${base.ours} | QEMU: ${base.qemu}` } };
    }
    excused.push(excuse.id);
  }
  if (v.check.ok && v.check.verdict !== qemu.check.verdict) {
    const ourClass = v.check.verdict;
    const excuse = expectedDifferences.find((d) => d.check?.(facts, ourClass, qemu.check.verdict));
    if (excuse === undefined) {
      const detail = `ours=${ourClass},qemu=${qemu.check.verdict}`;
      const why = [v.check.reason, qemu.check.firstMessage].filter((m) => m !== undefined).join(' | ');
      return { ...base, excused, finding: { finding: 'check-disagreement', detail, message: `model check ${ourClass}, qemu-img check ${qemu.check.verdict}${why === '' ? '' : ` (${why})`}` } };
    }
    excused.push(excuse.id);
  }
  return { ...base, excused };
}
