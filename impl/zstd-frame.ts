// The extent of one zstd frame (RFC 8878 §3.1.1), read from its headers alone:
// a compressed cluster's sectors may hold the start of the next stream, and
// QEMU's streaming decoder stops at the end of the first frame, so only that
// frame is handed to the decoder. Also returns the declared content size, so
// that a frame claiming more than a cluster is refused before any allocation.
import { Qcow2Error } from './errors.js';

/** 0xFD2FB528, little-endian on disk. */
const zstdMagic = 0xfd2fb528;
const blockHeaderBytes = 3;
const checksumBytes = 4;
/** Frame_Content_Size field bytes by its flag (flag 0: 1 byte only with Single_Segment). */
const contentSizeBytes = [0, 2, 4, 8] as const;
const dictionaryIdBytes = [0, 1, 2, 4] as const;
/** Block_Type 3 is reserved. */
const reservedBlockType = 3;
/** Block_Type 1 (RLE) stores one byte whatever its Block_Size. */
const rleBlockType = 1;

export interface ZstdFrame {
  /** Bytes of the whole frame, from its magic to the end of its checksum. */
  readonly length: number;
  /** Decompressed size the header declares, or undefined when it does not say. */
  readonly contentSize: number | undefined;
}

/** Reads `bytes` as the start of a zstd frame. Errors: Qcow2Error 'corrupt' naming what is wrong and where. */
export function zstdFrameExtent(bytes: Uint8Array, where: string): ZstdFrame {
  const fail = (what: string): never => {
    throw new Qcow2Error('corrupt', `${where}: zstd frame ${what}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (end: number, what: string) => {
    if (end > bytes.length) fail(`${what} runs past the stream's ${bytes.length} bytes`);
  };
  need(5, 'header');
  if (view.getUint32(0, true) !== zstdMagic) fail(`magic 0x${view.getUint32(0, true).toString(16)} (expected 0x${zstdMagic.toString(16)})`);
  const descriptor = bytes[4]!;
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const hasChecksum = (descriptor >> 2) & 1;
  const fcsBytes = contentSizeFlag === 0 ? singleSegment : contentSizeBytes[contentSizeFlag]!;
  let at = 5 + (singleSegment ? 0 : 1) + dictionaryIdBytes[descriptor & 3]!;
  need(at + fcsBytes, 'header');
  let contentSize: number | undefined;
  if (fcsBytes > 0) {
    let value = 0n;
    for (let i = fcsBytes - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[at + i]!);
    contentSize = Number(fcsBytes === 2 ? value + 256n : value);
  }
  at += fcsBytes;
  for (let last = 0; last === 0; ) {
    need(at + blockHeaderBytes, 'block header');
    const header = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16);
    last = header & 1;
    const type = (header >> 1) & 3;
    if (type === reservedBlockType) fail(`block at ${at} has the reserved type`);
    at += blockHeaderBytes + (type === rleBlockType ? 1 : header >>> 3);
    need(at, 'block');
  }
  at += hasChecksum ? checksumBytes : 0;
  need(at, 'checksum');
  return { length: at, contentSize };
}
