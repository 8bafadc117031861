//! A fault-injecting file under the engine (style.md §11, after TigerBeetle's
//! testing/storage.zig). It keeps the *durable* bytes (what the disk holds as
//! of the last completed flush) apart from what was *written* since, so that
//! a crash can be made of any state a disk could hold, and it fails the Nth
//! read, write or flush on request.
//!
//! Faults injected:
//! - crash (crashState): every write and truncate before the last completed
//!   flush is there; of those since, any subset, each kept one applied in
//!   issue order, and a kept write may be torn: only some of its 512-byte
//!   sectors land (a sector is atomic: docs/semantics.md, "Faults"). Each
//!   sector holds a prefix of the pending writes to it, as a page cache
//!   merges them: a later write never lands over a lost earlier one.
//! - power loss inside an operation (losePowerAt): at the Nth write or flush
//!   the power goes: that access and every later one fail and change nothing,
//!   and crashState chooses among the writes pending at that moment.
//! - I/O errors (arm): the Nth read, write or flush after arming throws a
//!   Qcow2Error 'io' naming EIO or ENOSPC, once or on every access of that
//!   kind until disarmed. A failed write or truncate changes nothing; a failed
//!   flush makes nothing durable.
//! Out of scope: bit rot and misdirected writes (a checksum-free format cannot
//! tell them from data), a torn sector, a write that fails after landing in part.
//! With `faultsOff` nothing is ever injected, so a run replays clean.
import type { BlockFile } from './block-file.js';
import { MemoryFile } from './memory-file.js';
import { Qcow2Error } from '../errors.js';
import { assert } from '../assert.js';

/** The unit a crash never splits: a write lands or not sector by sector. */
export const crashSectorBytes = 512;
/** Pending writes a crash state chooses among one by one; the rest of a longer epoch land or not in runs of this many. */
export const crashChoicesMax = 64;

export type FaultAccess = 'read' | 'write' | 'flush';
export type FaultErrno = 'EIO' | 'ENOSPC';

/** One armed I/O error: the `nth` (1-based) access of kind `access` from now fails. */
export interface FaultSpec {
  readonly access: FaultAccess;
  readonly nth: number;
  readonly errno: FaultErrno;
  /** Every access of that kind from the Nth on fails until disarm(); else only the Nth. */
  readonly persistent: boolean;
}

type Pending = { readonly kind: 'write'; readonly offset: number; readonly data: Uint8Array } | { readonly kind: 'truncate'; readonly length: number };

/** A write or truncate issued since the last completed flush, as crashState replays it. */
export type PendingEntry = Pending;

export class FaultFile implements BlockFile {
  private readonly durable: MemoryFile;
  /** What reads see: durable plus every pending entry. */
  private readonly written: MemoryFile;
  private pending: Pending[] = [];
  private armed: { spec: FaultSpec; seen: number; fired: number } | undefined;
  private failure: { readonly access: FaultAccess; readonly offset: number } | undefined;
  /** Armed power loss: accesses of that kind still allowed before it. */
  private powerCut: { readonly access: 'write' | 'flush'; left: number } | undefined;
  private powerOff = false;
  /** Completed flushes (barriers) so far. */
  private flushEpoch = 0;

  /** @param faultsOff never inject anything (arm() is ignored), so the same run replays clean. */
  constructor(
    initial: Uint8Array,
    readonly faultsOff = false,
  ) {
    this.durable = new MemoryFile(initial);
    this.written = new MemoryFile(initial);
  }

  /** Completed flushes since the file was made. */
  get epoch(): number {
    return this.flushEpoch;
  }

  /** The writes and truncates since the last completed flush, oldest first. */
  get pendingEntries(): readonly PendingEntry[] {
    return this.pending;
  }

  /** What the file reads as now (durable plus pending). */
  bytes(): Uint8Array {
    return this.written.bytes();
  }

  /** What the disk certainly holds: the file as of the last completed flush. */
  durableBytes(): Uint8Array {
    return this.durable.bytes();
  }

  /** Arms one I/O error (replacing any armed one); see FaultSpec. */
  arm(spec: FaultSpec): void {
    assert(Number.isSafeInteger(spec.nth) && spec.nth >= 1, `fault nth is a positive integer, got ${spec.nth}`);
    if (this.faultsOff) return;
    this.armed = { spec, seen: 0, fired: 0 };
    this.failure = undefined;
  }

  /** The first access the last armed error failed (a flush's offset is 0), if it failed one. */
  get firstFailure(): { readonly access: FaultAccess; readonly offset: number } | undefined {
    return this.failure;
  }

  /**
   * The power goes at the `nth` (1-based) write or flush from now: that access
   * and all later ones fail with 'io' and change nothing (see powerLost).
   */
  losePowerAt(access: 'write' | 'flush', nth: number): void {
    assert(Number.isSafeInteger(nth) && nth >= 1, `power-loss nth is a positive integer, got ${nth}`);
    if (this.faultsOff) return;
    this.powerCut = { access, left: nth - 1 };
  }

  /** Whether the power went (the file then only serves crashState). */
  get powerLost(): boolean {
    return this.powerOff;
  }

  /** Clears the armed error; returns how many accesses it failed. */
  disarm(): number {
    const fired = this.armed?.fired ?? 0;
    this.armed = undefined;
    return fired;
  }

  async pread(offset: number, length: number): Promise<Uint8Array> {
    this.maybeFail('read', offset);
    return this.written.pread(offset, length);
  }

  async preadInto(offset: number, target: Uint8Array): Promise<void> {
    this.maybeFail('read', offset);
    return this.written.preadInto(offset, target);
  }

  async pwrite(offset: number, data: Uint8Array): Promise<void> {
    this.maybeFail('write', offset);
    await this.written.pwrite(offset, data);
    this.pending.push({ kind: 'write', offset, data: data.slice() });
  }

  async truncate(length: number): Promise<void> {
    this.maybeFail('write', length);
    await this.written.truncate(length);
    this.pending.push({ kind: 'truncate', length });
  }

  async flush(): Promise<void> {
    this.maybeFail('flush', 0);
    for (const entry of this.pending) await applyEntry(this.durable, entry);
    this.pending = [];
    this.flushEpoch++;
  }

  length(): Promise<number> {
    return this.written.length();
  }

  async close(): Promise<void> {
    // A close is no barrier: what was not flushed stays pending.
  }

  /**
   * One crash state, chosen by `seed` (the same seed and history give the same
   * bytes): the durable bytes plus a subset of the pending entries in issue
   * order, some writes torn at sector boundaries. The seed's low bits pick the
   * shape: nothing landed, everything landed, a prefix in issue order, or each
   * entry (and each sector of a kept write) kept at random.
   */
  async crashState(seed: number): Promise<Uint8Array> {
    const random = xorshift32(seed);
    const n = this.pending.length;
    const shape = random() % 4;
    const out = new MemoryFile(this.durable.bytes());
    const prefix = shape === 2 ? random() % (n + 1) : 0;
    // Each entry's choice is one draw: a long epoch lands or not in runs of entries, so a crash state costs O(crashChoicesMax) draws plus copying.
    const run = Math.max(1, Math.ceil(n / crashChoicesMax));
    let keepRun = false;
    // Sectors where a pending write did not land: a later write lands there no
    // more (the page cache merges writes to one sector, so the disk holds some
    // prefix of them, never a later one over a lost earlier one).
    const lost = new Set<number>();
    for (const [i, entry] of this.pending.entries()) {
      if (i % run === 0) keepRun = (random() & 1) === 1;
      const keep = shape === 1 || (shape === 2 && i < prefix) || (shape === 3 && keepRun);
      if (entry.kind === 'truncate') {
        if (keep) await out.truncate(entry.length);
        continue;
      }
      const torn = keep && shape === 3 && (random() & 3) === 0;
      await applySectors(out, entry, lost, (): boolean => keep && (!torn || (random() & 1) === 1));
    }
    return out.bytes();
  }

  private maybeFail(access: FaultAccess, offset: number): void {
    const cut = this.powerCut;
    if (cut !== undefined && cut.access === access && !this.powerOff) {
      if (cut.left === 0) this.powerOff = true;
      else cut.left--;
    }
    if (this.powerOff) throw new Qcow2Error('io', `the power is lost (${access} at byte ${offset} not done)`);
    const a = this.armed;
    if (a === undefined || a.spec.access !== access) return;
    a.seen++;
    if (a.seen < a.spec.nth || (a.seen > a.spec.nth && !a.spec.persistent)) return;
    a.fired++;
    this.failure ??= { access, offset };
    const errno = a.spec.errno === 'EIO' ? 'Input/output error (EIO)' : 'No space left on device (ENOSPC)';
    throw new Qcow2Error('io', `injected ${errno} on ${access} ${a.seen} since arming, at byte ${offset}`);
  }
}

async function applyEntry(file: MemoryFile, entry: Pending): Promise<void> {
  if (entry.kind === 'write') await file.pwrite(entry.offset, entry.data);
  else await file.truncate(entry.length);
}

/**
 * A write sector by sector (sectors of the file, so its partial first and last
 * sectors count as sectors too): a sector lands when `lands()` says so and no
 * earlier pending write to it was lost; one that does not land is lost.
 */
async function applySectors(file: MemoryFile, entry: Pending & { kind: 'write' }, lost: Set<number>, lands: () => boolean): Promise<void> {
  const end = entry.offset + entry.data.length;
  for (let at = entry.offset; at < end; ) {
    const sector = Math.floor(at / crashSectorBytes);
    const sectorEnd = Math.min(end, (sector + 1) * crashSectorBytes);
    if (lands() && !lost.has(sector)) await file.pwrite(at, entry.data.subarray(at - entry.offset, sectorEnd - entry.offset));
    else lost.add(sector);
    at = sectorEnd;
  }
}

/** Marsaglia's xorshift32 from a seed (0 maps to a fixed non-zero state). */
function xorshift32(seed: number): () => number {
  let x = (seed | 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}
