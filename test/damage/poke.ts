// Big-endian field pokes on an image held in memory. Damage is written with these
// on a copy of a QEMU-written image; every 64-bit value is a bigint so that bit 63
// (COPIED) and 56-bit offsets are exact.

export function getU32(image: Uint8Array, offset: number): number {
  return new DataView(image.buffer, image.byteOffset).getUint32(offset);
}

export function setU32(image: Uint8Array, offset: number, value: number): void {
  new DataView(image.buffer, image.byteOffset).setUint32(offset, value);
}

export function getU64(image: Uint8Array, offset: number): bigint {
  return new DataView(image.buffer, image.byteOffset).getBigUint64(offset);
}

export function setU64(image: Uint8Array, offset: number, value: bigint): void {
  new DataView(image.buffer, image.byteOffset).setBigUint64(offset, value);
}

/** OR `bits` into the 64-bit field at `offset`. */
export function orU64(image: Uint8Array, offset: number, bits: bigint): void {
  setU64(image, offset, getU64(image, offset) | bits);
}

/** Clear `bits` in the 64-bit field at `offset`. */
export function clearU64(image: Uint8Array, offset: number, bits: bigint): void {
  setU64(image, offset, getU64(image, offset) & ~bits);
}

/** A number that must be exact, from a 64-bit field (test images are far below 2^53). */
export function toNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${value} is past 2^53`);
  return Number(value);
}

/** The image grown (zero-filled) or cut to `length` bytes. */
export function resized(image: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  out.set(image.subarray(0, Math.min(length, image.length)));
  return out;
}
