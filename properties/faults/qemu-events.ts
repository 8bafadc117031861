// Which blkdebug events each faultable operation reaches in QEMU 7.2, so that
// an injected error or a break point drawn for an operation is one that the
// operation (and the flush after it) can meet. Drawn blindly from all events,
// 16 of 260 injected errors fired (session 5); most events are never reached
// by most ops.
import { guestClusterKind, type ModelState } from '../../model/index.js';
import type { BlkdebugEvent } from '../../oracle/index.js';
import type { FaultableOp } from './fault-step.js';

const flushes: readonly BlkdebugEvent[] = ['flush_to_os', 'flush_to_disk'];

/**
 * The events an op and a flush after it reach, measured with `break EVENT` on
 * `blkdebug::IMAGE` in a qemu-io with cache writeback (docs/semantics.md,
 * "Faults", QEMU part). `allocating`: the op may allocate, free or copy
 * clusters or tables (some cluster it touches is not a plain allocated one,
 * or snapshots share them, or extended L2 entries track subclusters); else it
 * only overwrites allocated clusters in place. First the event nearly every
 * instance reaches: shrinking draws towards it.
 */
const measured = {
  write: {
    allocating: ['write_aio', 'l2_load', 'l2_update', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'refblock_alloc_hookup', 'refblock_alloc_write', 'pwritev_zero', 'read_aio', 'l2_alloc_cow_read', 'cow_read', 'cow_write', ...flushes],
    inPlace: ['write_aio', 'l2_load', ...flushes],
  },
  writeCompressed: {
    allocating: ['write_compressed', 'l2_update', 'l2_load', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'refblock_load', 'refblock_update_part', 'refblock_alloc', ...flushes],
    // refused (compression cannot overwrite): it only looks its L2 entries up
    inPlace: ['l2_load', ...flushes],
  },
  writeZeroes: {
    allocating: ['l2_update', 'l2_load', 'l2_alloc_write', 'l2_alloc_cow_read', 'l1_update', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'pwritev_zero', ...flushes],
    // `write -z` over allocated clusters keeps them (zero flag); with -u it frees them: the refcount events
    inPlace: ['l2_update', 'l2_load', ...flushes],
    inPlaceUnmap: ['l2_update', 'l2_load', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', ...flushes],
  },
  discard: {
    allocating: ['l2_update', 'l2_load', 'l2_alloc_cow_read', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', ...flushes],
    inPlace: ['l2_update', 'l2_load', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', ...flushes],
  },
} as const satisfies Record<string, { readonly allocating: readonly BlkdebugEvent[]; readonly inPlace: readonly BlkdebugEvent[]; readonly inPlaceUnmap?: readonly BlkdebugEvent[] }>;

/** A growth past the L1 table's coverage allocates a new table; a shrink frees L2 tables and clusters. */
const resizeEvents = {
  grow: ['l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', ...flushes],
  shrink: ['l2_update', 'l2_load', 'l1_shrink_write_table', 'l1_shrink_free_l2_clusters', 'cluster_free', 'refblock_load', 'refblock_update_part', 'pwritev_zero', ...flushes],
} as const satisfies Record<string, readonly BlkdebugEvent[]>;

/**
 * The events of a refcount table that grows (alloc_refcount_block): reached
 * only when the file outgrows what the table's refcount blocks cover, which
 * the small disks drawn under faults do with 512-byte clusters and 64-bit
 * refcounts (64 blocks of 64 counts: 2 MiB of file).
 */
const refcountTableEvents: readonly BlkdebugEvent[] = ['refblock_alloc_write_blocks', 'refblock_alloc_write_table', 'refblock_alloc_switch_table', 'reftable_grow', 'reftable_update'];

/** Whether an allocation may grow the refcount table of an image with these options. */
function reftableMayGrow(state: ModelState): boolean {
  return state.options.clusterBits === 9 && state.options.refcountBits === 64;
}

/**
 * `qemu-img snapshot -c|-d|-a` on `blkdebug:RULES:IMAGE`: the events whose
 * once-EIO fails the op or leaks (measured: docs/semantics.md, "Inside a
 * snapshot operation"); l1_update, refblock_update, flush_to_disk and the
 * guest data events reach none of them.
 */
const snapshotEvents = {
  snapshotCreate: ['l2_update', 'l2_load', 'refblock_load', 'refblock_alloc', 'cluster_alloc', 'flush_to_os'],
  snapshotDelete: ['l2_update', 'l2_load', 'refblock_load', 'refblock_alloc', 'cluster_alloc', 'cluster_free', 'flush_to_os'],
  snapshotRevert: ['l2_load', 'refblock_load', 'refblock_alloc', 'flush_to_os'],
} as const satisfies Record<string, readonly BlkdebugEvent[]>;

/** Whether every guest cluster [offset, offset + length) touches is a plain allocated cluster, in an image with no snapshots and no subclusters. */
function inPlace(state: ModelState, offset: number, length: number): boolean {
  if (state.snapshots.length > 0 || state.options.extendedL2 === true) return false;
  const clusterSize = 2 ** state.options.clusterBits;
  const end = Math.min(offset + length, state.options.virtualSize);
  if (end <= offset) return false;
  for (let c = Math.floor(offset / clusterSize); c * clusterSize < end; c++) if (guestClusterKind(state, c) !== 'normal') return false;
  return true;
}

/** The events `op` and a flush after it reach from `state` (the model before the op). */
export function qemuEventsFor(op: FaultableOp, state: ModelState): readonly BlkdebugEvent[] {
  switch (op.kind) {
    case 'flush':
      return flushes;
    case 'resize':
      return op.size >= state.options.virtualSize ? resizeEvents.grow : resizeEvents.shrink;
    case 'snapshotCreate':
    case 'snapshotDelete':
    case 'snapshotRevert':
      return snapshotEvents[op.kind];
    case 'writeZeroes': {
      const events = measured.writeZeroes;
      if (!inPlace(state, op.offset, op.length)) return events.allocating;
      return op.unmap ? events.inPlaceUnmap : events.inPlace;
    }
    default: {
      const events = measured[op.kind];
      if (inPlace(state, op.offset, op.length)) return events.inPlace;
      return op.kind === 'write' && reftableMayGrow(state) ? [...events.allocating, ...refcountTableEvents] : events.allocating;
    }
  }
}

/** The event `pick` chooses for `op` from `state` (any natural number: it wraps round the list). */
export function qemuEventFor(op: FaultableOp, state: ModelState, pick: number): BlkdebugEvent {
  const events = qemuEventsFor(op, state);
  const event = events[pick % events.length];
  if (event === undefined) throw new Error(`no blkdebug events listed for ${op.kind}`);
  return event;
}
