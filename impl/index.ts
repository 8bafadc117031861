// Public API of the qcow2 engine.
export type { BlockFile } from './io/block-file.js';
export { MemoryFile } from './io/memory-file.js';
export { FaultFile, crashSectorBytes, type FaultSpec, type FaultAccess, type FaultErrno, type PendingEntry } from './io/fault-file.js';
export { NodeFile, systemErrorText } from './io/node-file.js';
export type { NodeFileOptions } from './io/node-file.js';
export { imageLockPerms, lockImageFile } from './io/file-lock.js';
export { Qcow2Image } from './image.js';
export type { CreateOptions, OpenOptions, SnapshotInfo, MapEntry, ImageInfo, BitmapInfo, RebaseOptions, BackingFormat } from './image.js';
export type { BackingLayer, ChainMapEntry } from './backing.js';
export { fullBackingPath, probeFormat } from './backing.js';
export { backingChainDepthMax } from './limits.js';
export { Qcow2BitmapsError, Qcow2Error, Qcow2FormatError, Qcow2LockError } from './errors.js';
export type { Qcow2ErrorCode } from './errors.js';
export { AssertionError } from './assert.js';
export type { RepairMode, RepairResult, RefcountFix } from './repair.js';
