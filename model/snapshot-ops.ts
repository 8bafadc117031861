// Internal snapshots (qcow2_snapshot_create/goto/delete). The model keeps each
// snapshot's L1 as the same L2 table identities the active view had, which is
// exactly QEMU's sharing: the refcount walk counts them once more.
import { refuse, resizeUnchecked, ok, type StepResult } from './guest-ops.js';
import { wouldOverflow } from './refcounts.js';
import type { ModelState, Snapshot } from './state.js';
import type { SnapshotCreateOp, SnapshotDeleteOp, SnapshotRevertOp } from './ops.js';

/**
 * `qemu-img snapshot -a` (qcow2_snapshot_goto → find_snapshot_by_id_or_name):
 * the snapshot whose ID is `idOrName`, else the first in table order named so.
 * Index into state.snapshots, -1 when none matches.
 */
export function findSnapshotByIdOrName(state: ModelState, idOrName: string): number {
  const byId = state.snapshots.findIndex((s) => s.id === idOrName);
  return byId >= 0 ? byId : findSnapshotByName(state, idOrName);
}

/**
 * `qemu-img snapshot -d` (bdrv_snapshot_delete(bs, NULL, name) →
 * find_snapshot_by_id_and_name with no ID): the first snapshot in table order
 * named `name`; IDs are not looked at. Index, -1 when none matches.
 */
export function findSnapshotByName(state: ModelState, name: string): number {
  return state.snapshots.findIndex((s) => s.name === name);
}

/** QEMU: decimal of (max strtoul(id) over existing snapshots) + 1; non-numeric IDs count as 0. */
function nextSnapshotId(snapshots: readonly Snapshot[]): string {
  let max = 0;
  for (const s of snapshots) {
    const n = /^\d+/.exec(s.id);
    if (n) max = Math.max(max, Number(n[0]));
  }
  return String(max + 1);
}

export function snapshotCreate(state: ModelState, op: SnapshotCreateOp): StepResult {
  if (wouldOverflow(state, state.active)) {
    return refuse(state, 'refcount-overflow', `snapshot ${op.name}: a refcount would exceed 2^${state.options.refcountBits} - 1`);
  }
  const snapshot: Snapshot = {
    id: nextSnapshotId(state.snapshots),
    name: op.name,
    diskSize: state.options.virtualSize,
    l1: state.active,
  };
  return { state: { ...state, snapshots: [...state.snapshots, snapshot] }, outcome: ok };
}

export function snapshotRevert(state: ModelState, op: SnapshotRevertOp): StepResult {
  const index = findSnapshotByIdOrName(state, op.name);
  const snapshot = state.snapshots[index];
  if (snapshot === undefined) return refuse(state, 'unknown-snapshot', `no snapshot ${op.name}`);
  let resized = state;
  if (snapshot.diskSize !== state.options.virtualSize) {
    if (state.options.version === 2) return refuse(state, 'unsupported', "Can't resize a v2 image which has snapshots");
    resized = resizeUnchecked(state, snapshot.diskSize, false);
  }
  // QEMU adds the snapshot's walk before dropping the old active one, so the
  // check is against the counts in between.
  if (wouldOverflow(resized, snapshot.l1)) {
    return refuse(state, 'refcount-overflow', `revert to ${op.name}: a refcount would exceed 2^${state.options.refcountBits} - 1`);
  }
  return { state: { ...resized, active: snapshot.l1 }, outcome: ok };
}

/**
 * The state a revert of `op` passes through durably when the snapshot's disk
 * size differs: the active view resized to it (qcow2_snapshot_goto truncates,
 * then switches the L1), which a fault between the two may leave. Undefined
 * when the revert does not resize (or is refused before it would).
 */
export function revertResized(state: ModelState, op: SnapshotRevertOp): ModelState | undefined {
  const snapshot = state.snapshots[findSnapshotByIdOrName(state, op.name)];
  if (snapshot === undefined || snapshot.diskSize === state.options.virtualSize || state.options.version === 2) return undefined;
  return resizeUnchecked(state, snapshot.diskSize, false);
}

export function snapshotDelete(state: ModelState, op: SnapshotDeleteOp): StepResult {
  const index = findSnapshotByName(state, op.name);
  if (index < 0) return refuse(state, 'unknown-snapshot', `no snapshot ${op.name}`);
  return { state: { ...state, snapshots: state.snapshots.filter((_, i) => i !== index) }, outcome: ok };
}
