// Image locking exactly as QEMU's file-posix driver does it (block/file-posix.c
// raw_apply_lock_bytes, raw_check_lock_bytes, raw_handle_perm_lock), so that
// QEMU and this engine refuse each other's conflicting opens.
//
// Each block permission bit i (QEMU's BLK_PERM_*) has two lock bytes in the
// image file: byte 100 + i is read-locked by every opener that uses the
// permission, byte 200 + i by every opener that refuses to share it. All locks
// are shared (F_RDLCK) Linux open-file-description locks, so any number of
// holders coexist; an opener then tests, with F_OFD_GETLK for a write lock,
// byte 200 + i for each permission it uses (does anyone refuse to share it?)
// and byte 100 + i for each permission it refuses to share (does anyone use
// it?). The kernel drops OFD locks when the last descriptor of the open file
// closes, so a close or a crash of the process releases them. Two opens of the
// same file in one process are two open file descriptions and conflict like
// two processes, as in QEMU.
//
// Node has no fcntl: koffi (an FFI library whose prebuilt binaries come in its
// npm packages) calls libc's fcntl.

import { createRequire } from 'node:module';
import { assert } from '../assert.js';
import { Qcow2Error, Qcow2LockError } from '../errors.js';

/** QEMU's BLK_PERM_* bits (include/block/block-common.h); bit i owns bytes 100 + i and 200 + i. */
const blockPerm = {
  consistentRead: 0x01,
  write: 0x02,
  writeUnchanged: 0x04,
  resize: 0x08,
} as const;

/** BLK_PERM_ALL: every permission QEMU 7.2 knows. */
const blockPermAll = 0x0f;
/** QEMU's names of the bits, in bit order (block.c bdrv_perm_names). */
const blockPermNames = ['consistent read', 'write', 'write unchanged', 'resize'] as const;
/** RAW_LOCK_PERM_BASE: byte 100 + i is locked by whoever uses permission i. */
const lockPermBase = 100;
/** RAW_LOCK_SHARED_BASE: byte 200 + i is locked by whoever refuses to share permission i. */
const lockSharedBase = 200;

assert(blockPermNames.length === Math.log2(blockPermAll + 1), 'one name per permission bit');
assert(lockPermBase + blockPermNames.length <= lockSharedBase, 'the two byte ranges do not overlap');

/** What an opener uses (`perm`) and what it lets others use (`shared`), as BLK_PERM_* masks. */
export interface LockPerms {
  readonly perm: number;
  readonly shared: number;
}

/**
 * The permissions QEMU 7.2's qcow2 driver asks of its image file, measured
 * with /proc/locks while `qemu-io -f qcow2` holds an image:
 * - read-write: uses consistent read, write and resize; shares consistent
 *   read and write unchanged (bytes 100, 101, 103, 201, 203);
 * - read-only: uses consistent read; shares the same (bytes 100, 201, 203);
 * - read-only with force-share (`-U`): uses consistent read, shares
 *   everything (byte 100).
 * Force-share with write access is refused, in QEMU's words.
 */
export function imageLockPerms(options: { readonly readOnly: boolean; readonly forceShare: boolean }): LockPerms {
  if (options.forceShare && !options.readOnly) {
    throw new Qcow2Error('invalid-argument', 'force-share=on can only be used with read-only images');
  }
  const shareWhileUsed = blockPerm.consistentRead | blockPerm.writeUnchanged;
  if (!options.readOnly) {
    return { perm: blockPerm.consistentRead | blockPerm.write | blockPerm.resize, shared: shareWhileUsed };
  }
  return { perm: blockPerm.consistentRead, shared: options.forceShare ? blockPermAll : shareWhileUsed };
}

// Linux fcntl commands and struct flock (64-bit layout: l_type and l_whence
// are shorts, l_start and l_len 64-bit at offsets 8 and 16, l_pid at 24).
const fOfdGetlk = 36;
const fOfdSetlk = 37;
const fRdlck = 0;
const fWrlck = 1;
const fUnlck = 2;
const seekSet = 0;
const flockBytes = 32;

type Koffi = typeof import('koffi');
type Fcntl = (fd: number, cmd: number, type: string, lock: Buffer) => number;
let libcFcntl: { readonly koffi: Koffi; readonly fcntl: Fcntl } | undefined;

/**
 * libc's fcntl through koffi, both loaded on first use: code that never locks
 * a file (the engine on memory, the fuzzer's worker threads) never loads the
 * native addon. OFD locks exist only on Linux.
 */
function loadFcntl(): { readonly koffi: Koffi; readonly fcntl: Fcntl } {
  if (libcFcntl !== undefined) return libcFcntl;
  if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'arm64')) {
    throw new Qcow2Error('unsupported', `image locking needs Linux on x64 or arm64, not ${process.platform}/${process.arch}`);
  }
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const fcntl = koffi.load('libc.so.6').func('int fcntl(int fd, int cmd, ...)') as Fcntl;
  libcFcntl = { koffi, fcntl };
  return libcFcntl;
}

/** A struct flock for one byte. */
function flock(type: number, byte: number): Buffer {
  const lock = Buffer.alloc(flockBytes);
  lock.writeInt16LE(type, 0);
  lock.writeInt16LE(seekSet, 2);
  lock.writeBigInt64LE(BigInt(byte), 8);
  lock.writeBigInt64LE(1n, 16);
  return lock;
}

/** fcntl(fd, cmd, lock); a failure (EAGAIN: someone write-locked the byte, not QEMU) is an 'io' error. */
function fcntlOrThrow(fd: number, cmd: number, lock: Buffer, path: string, what: string): void {
  const { koffi, fcntl } = loadFcntl();
  if (fcntl(fd, cmd, 'void *', lock) === 0) return;
  throw new Qcow2Error('io', `Failed to ${what} of '${path}': errno ${koffi.errno()}`);
}

/** Read-locks one byte: QEMU's qemu_lock_fd(fd, byte, 1, false). */
function lockByte(fd: number, byte: number, path: string): void {
  fcntlOrThrow(fd, fOfdSetlk, flock(fRdlck, byte), path, `lock byte ${byte}`);
}

/** Whether another open file description holds a lock on `byte`: qemu_lock_fd_test(…, exclusive). */
function byteHeldElsewhere(fd: number, byte: number, path: string): boolean {
  const lock = flock(fWrlck, byte);
  fcntlOrThrow(fd, fOfdGetlk, lock, path, `test lock byte ${byte}`);
  const type = lock.readInt16LE(0);
  assert(type === fUnlck || type === fRdlck || type === fWrlck, 'F_OFD_GETLK returns a lock type');
  return type !== fUnlck;
}

/**
 * Takes QEMU's lock bytes for `perms` on the open file `fd` and then checks
 * that no one else conflicts, in QEMU's order (raw_apply_lock_bytes, then
 * raw_check_lock_bytes): first byte 200 + i for each used permission, then
 * byte 100 + i for each permission not shared. The locks live as long as the
 * open file: close it to release them, also after a refusal.
 *
 * Throws Qcow2LockError naming the permission and byte on a conflict,
 * Qcow2Error 'io' when fcntl fails, 'unsupported' off Linux.
 */
export function lockImageFile(fd: number, path: string, perms: LockPerms): void {
  assert(Number.isInteger(fd) && fd >= 0, 'a file descriptor');
  assert((perms.perm & ~blockPermAll) === 0 && (perms.shared & ~blockPermAll) === 0, 'known permission bits only');
  blockPermNames.forEach((_, bit) => {
    if ((perms.perm >> bit) & 1) lockByte(fd, lockPermBase + bit, path);
  });
  blockPermNames.forEach((_, bit) => {
    if (!((perms.shared >> bit) & 1)) lockByte(fd, lockSharedBase + bit, path);
  });
  blockPermNames.forEach((name, bit) => {
    const byte = lockSharedBase + bit;
    if ((perms.perm >> bit) & 1 && byteHeldElsewhere(fd, byte, path)) throw new Qcow2LockError(path, name, byte, false);
  });
  blockPermNames.forEach((name, bit) => {
    const byte = lockPermBase + bit;
    if (!((perms.shared >> bit) & 1) && byteHeldElsewhere(fd, byte, path)) throw new Qcow2LockError(path, name, byte, true);
  });
}
