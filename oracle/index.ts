// QEMU as the external judge: typed wrappers around qemu-img and an interactive
// qemu-io session. Data flows CLI → properties → oracle; nothing here imports
// from properties/ or cli/.
export * from './errors.js';
export { formatQemuVersion, qemuVersion, type QemuVersion } from './version.js';
export { findTool, qemuToolVariables, resolveTool, type ResolvedTool } from './tool-path.js';
export { withTempDir, keepFile, type KeepConstraints } from './temp.js';
export type { ReadConstraints } from './qemu-img/read-constraints.js';
export * from './qemu-img/check.js';
export * from './qemu-img/info.js';
export * from './qemu-img/map.js';
export * from './qemu-img/compare.js';
export * from './qemu-img/convert.js';
export * from './qemu-img/create.js';
export * from './qemu-img/snapshot.js';
export * from './qemu-img/resize.js';
export * from './qemu-img/bitmap.js';
export * from './qemu-img/chain.js';
export * from './qemu-io/blkdebug.js';
export { QemuIoSession, openQemuIo, type QemuIoCacheMode, type QemuIoConstraints, type WriteZeroesConstraints } from './qemu-io/session.js';
