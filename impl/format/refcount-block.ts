// One refcount block (digest §5.1). Sub-byte widths are packed LSB-first (QEMU's
// get/set_refcount_ro0..2); 16/32/64-bit entries are big-endian.
import { toSafeNumber } from '../errors.js';
import { assert } from '../assert.js';

export class RefcountBlock {
  readonly bytes: Uint8Array;
  readonly entriesCount: number;
  readonly bits: number;
  private readonly view: DataView;
  constructor(bytes: Uint8Array, refcountOrder: number) {
    assert(refcountOrder >= 0 && refcountOrder <= 6, 'refcount order 0..6');
    this.bytes = bytes;
    this.bits = 1 << refcountOrder;
    this.entriesCount = (bytes.length * 8) / this.bits;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get(index: number): number {
    assert(index >= 0 && index < this.entriesCount, 'refcount index inside the block');
    switch (this.bits) {
      case 1:
      case 2:
      case 4: {
        const perByte = 8 / this.bits;
        const shift = (index % perByte) * this.bits;
        return ((this.bytes[Math.floor(index / perByte)] ?? 0) >> shift) & ((1 << this.bits) - 1);
      }
      case 8:
        return this.bytes[index] ?? 0;
      case 16:
        return this.view.getUint16(index * 2);
      case 32:
        return this.view.getUint32(index * 4);
      default:
        return toSafeNumber(this.view.getBigUint64(index * 8), 'refcount');
    }
  }

  set(index: number, value: number): void {
    assert(index >= 0 && index < this.entriesCount, 'refcount index inside the block');
    assert(Number.isSafeInteger(value) && value >= 0 && (this.bits >= 53 || value < 2 ** this.bits), 'refcount fits its width');
    switch (this.bits) {
      case 1:
      case 2:
      case 4: {
        const perByte = 8 / this.bits;
        const shift = (index % perByte) * this.bits;
        const byte = Math.floor(index / perByte);
        const mask = ((1 << this.bits) - 1) << shift;
        this.bytes[byte] = ((this.bytes[byte] ?? 0) & ~mask) | (value << shift);
        return;
      }
      case 8:
        this.bytes[index] = value;
        return;
      case 16:
        this.view.setUint16(index * 2, value);
        return;
      case 32:
        this.view.setUint32(index * 4, value);
        return;
      default:
        this.view.setBigUint64(index * 8, BigInt(value));
    }
  }
}

/** Largest refcount a width can hold, capped at 2^53 - 1 (never reached in practice). */
export function refcountMax(refcountOrder: number): number {
  const bits = 1 << refcountOrder;
  return bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
}
