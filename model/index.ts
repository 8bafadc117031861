// Public face of the reference model. Everything here is pure: no I/O, no clock,
// no randomness; inputs are never mutated.
export * from './ops.js';
export type { BackingLayer, ClusterKind, DataCluster, L1Table, L2Entry, L2Table, ModelState, Snapshot, Geometry } from './state.js';
export { backingLayers, backingSize, geometry, subclusterState } from './state.js';
export { subclustersPerCluster, type SubclusterState, type Subclusters } from './subclusters.js';
export { initialState, step, validateOptions } from './step.js';
export { extendedL2ClusterBitsMin } from './options.js';
export type { StepResult } from './guest-ops.js';
export { chainPieces, read, readsAsZero, guestClusterKind, modelMap, type ChainPiece, type ModelMapRange } from './read.js';
export { expectedRefcounts, type ExpectedRefcounts } from './refcounts.js';
export { findSnapshotByIdOrName, findSnapshotByName, revertResized } from './snapshot-ops.js';
export { packedOverflowCluster, packingDecidesOverflow } from './packed-overflow.js';
export { bufferReader, type ByteReader } from './decode/byte-reader.js';
export { DecodeError } from './decode/decode-error.js';
export { decodeImage, type DecodedImage, type DecodedL1, type DecodedL2Entry } from './decode/image.js';
export type { Header, HeaderExtension } from './decode/header.js';
export { classifyL2Entry, type EntryKind } from './decode/l2-entry.js';
export { abstractImage, type AbstractImage, type AbstractView } from './abstract.js';
export { equivalent, type Difference, type Equivalence } from './equivalent.js';
export { checkImage, checkWith, type CheckDetails } from './check/check-image.js';
export { countedPastEnd } from './check/past-end.js';
export { repairReport, type RepairReport, type RepairMode as CheckRepairMode } from './check/repair-report.js';
export { checkReportJson, type CheckReport } from './check/report.js';
export { disallowedAfterFault, stateFromImage, faultSectorBytes } from './crash.js';
