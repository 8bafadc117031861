// What a damage kind is, and the small helpers the kinds share.
import type { BaseName } from '../base-images.js';
import { compressedBit, copiedBit, offsetMask, type L2Entry, type Layout } from '../layout.js';
import { resized, toNumber } from '../poke.js';

export type DamageVerdict = 'clean' | 'leaks' | 'corrupt' | 'cannot-check';

/** What a checker reports for a damaged image; counts are compared exactly. */
export interface ExpectedCheck {
  readonly verdict: DamageVerdict;
  readonly corruptions: number;
  readonly leaks: number;
  readonly checkErrors: number;
}

export interface DamageKind {
  readonly name: string;
  /** One line: what is broken. */
  readonly description: string;
  readonly base: BaseName;
  /** Breaks `image` (a private copy) in place, or returns a resized copy. */
  readonly damage: (image: Uint8Array, layout: Layout) => Uint8Array | void;
  /** What `qemu-img check` 7.2 reports (recorded from the tool, read against digest §8). */
  readonly qemu: ExpectedCheck;
  /** Why QEMU's check counts it that way, where that is not obvious (digest §8.2). */
  readonly why?: string;
  /** Files placed next to the image for qemu-img check, by name: the backing file the damage names. */
  readonly siblings?: Readonly<Record<string, Uint8Array>>;
}

export const clean: ExpectedCheck = { verdict: 'clean', corruptions: 0, leaks: 0, checkErrors: 0 };

export function corrupt(corruptions: number, leaks = 0): ExpectedCheck {
  return { verdict: 'corrupt', corruptions, leaks, checkErrors: 0 };
}

export function leaksOnly(leaks: number): ExpectedCheck {
  return { verdict: 'leaks', corruptions: 0, leaks, checkErrors: 0 };
}

/** QEMU cannot open the image (no report at all), or its check failed with check errors. */
export function cannotCheck(checkErrors = 0, corruptions = 0): ExpectedCheck {
  return { verdict: 'cannot-check', corruptions, leaks: 0, checkErrors };
}

export const isCompressed = (raw: bigint): boolean => (raw & compressedBit) !== 0n;
export const hostOf = (raw: bigint): number => toNumber(raw & offsetMask);

/** An active L2 entry of a data cluster with refcount 1 (COPIED set). */
export function privateData(layout: Layout): L2Entry {
  return layout.findL2('private data', (e) => !isCompressed(e.raw) && layout.refcount(layout.cluster(hostOf(e.raw))) === 1);
}

/** An active L2 entry of a data cluster shared with the snapshot (refcount 2, COPIED clear). */
export function sharedData(layout: Layout): L2Entry {
  return layout.findL2('shared data', (e) => !isCompressed(e.raw) && layout.refcount(layout.cluster(hostOf(e.raw))) > 1);
}

/** File offset of the L2 entry of `guestCluster` in the first active L2 table (must be unallocated there). */
export function l2Slot(layout: Layout, image: Uint8Array, guestCluster: number): number {
  const table = layout.l2TableOffset(0);
  if (table === 0) throw new Error('base image has no L2 table under L1[0]');
  const at = table + 8 * guestCluster;
  if (new DataView(image.buffer, image.byteOffset).getBigUint64(at) !== 0n) {
    throw new Error(`guest cluster ${guestCluster} is allocated in the base image`);
  }
  return at;
}

/** The image with `bytes` zero bytes appended. */
export function grow(image: Uint8Array, bytes: number): Uint8Array {
  return resized(image, image.length + bytes);
}

export { copiedBit };
