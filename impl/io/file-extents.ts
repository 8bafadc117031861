// A raw file's data and holes, as QEMU's file-posix driver asks the file system
// for them (find_allocation: lseek SEEK_DATA, then SEEK_HOLE; qemu-img map reports
// holes as zeros and everything else as data, whatever its bytes) and makes them
// (write zeroes with unmap punches a hole: fallocate PUNCH_HOLE | KEEP_SIZE).
// Node has neither call: koffi (loaded on first use, as for the image locks) calls libc's.
import { createRequire } from 'node:module';
import { assert } from '../assert.js';
import { Qcow2Error } from '../errors.js';

/** Linux's whence values and the errno of "no data at or after the offset". */
const seekData = 3;
const seekHole = 4;
const enxio = 6;

type Koffi = typeof import('koffi');
type Lseek = (fd: number, offset: bigint, whence: number) => bigint | number;
type Fallocate = (fd: number, mode: number, offset: bigint, length: bigint) => number;
interface Libc {
  readonly koffi: Koffi;
  readonly lseek: Lseek;
  readonly fallocate: Fallocate;
}
let libc: Libc | undefined;

/** FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE. */
const punchHoleKeepSize = 0x01 | 0x02;

function loadLibc(): Libc {
  if (libc !== undefined) return libc;
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    throw new Qcow2Error('unsupported', `raw file extents need Linux on x64 or arm64, not ${process.platform}/${process.arch}`);
  }
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  libc = {
    koffi,
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as Lseek,
    fallocate: lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as Fallocate,
  };
  return libc;
}

/**
 * Deallocate [offset, offset + length) of `fd`, keeping the size: those bytes
 * then read as zeros. false when the file system cannot (the caller writes zeros).
 */
export function punchHole(fd: number, offset: number, length: number): boolean {
  assert(offset >= 0 && length > 0, 'a hole has a place and a size');
  const { fallocate } = loadLibc();
  return fallocate(fd, punchHoleKeepSize, BigInt(offset), BigInt(length)) === 0;
}

/**
 * The extent of `fd` that starts at `offset` (inside a file of `fileLength`
 * bytes): data or a hole, and where it ends (at most `fileLength`). A hole that
 * runs to the end of the file (ENXIO) is a hole to `fileLength`, as in QEMU.
 */
export function extentAt(fd: number, offset: number, fileLength: number, path: string): { data: boolean; end: number } {
  assert(offset >= 0 && offset < fileLength, 'extent asked inside the file');
  const { koffi, lseek } = loadLibc();
  const dataAt = Number(lseek(fd, BigInt(offset), seekData));
  if (dataAt < 0) {
    const errno = koffi.errno();
    if (errno === enxio) return { data: false, end: fileLength };
    throw new Qcow2Error('io', `lseek SEEK_DATA at ${offset} of '${path}': errno ${errno}`);
  }
  if (dataAt > offset) return { data: false, end: Math.min(dataAt, fileLength) };
  const holeAt = Number(lseek(fd, BigInt(offset), seekHole));
  if (holeAt < 0) throw new Qcow2Error('io', `lseek SEEK_HOLE at ${offset} of '${path}': errno ${koffi.errno()}`);
  assert(holeAt > offset, 'data at the offset ends after it');
  return { data: true, end: Math.min(holeAt, fileLength) };
}
