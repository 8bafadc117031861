// Public face of the reference model. Everything here is pure: no I/O, no clock,
// no randomness; inputs are never mutated.
export * from './ops.js';
export type { ClusterKind, DataCluster, L1Table, L2Entry, L2Table, ModelState, Snapshot, Geometry } from './state.js';
export { geometry } from './state.js';
export { initialState, step, validateOptions } from './step.js';
export type { StepResult } from './guest-ops.js';
export { read, guestClusterKind, modelMap, type ModelMapRange } from './read.js';
export { expectedRefcounts, type ExpectedRefcounts } from './refcounts.js';
export { findSnapshot } from './snapshot-ops.js';
