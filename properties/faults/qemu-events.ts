// Which blkdebug events each faultable operation reaches in QEMU 7.2, so that
// an injected error or a break point drawn for an operation is one that the
// operation (and the flush after it) can meet. Drawn blindly from all events,
// 16 of 260 injected errors fired (session 5); most events are never reached
// by most ops.
import type { BlkdebugEvent } from '../../oracle/index.js';
import type { FaultableOp } from './fault-step.js';

/**
 * The events reached by each op kind, then by a flush in the same qemu-io
 * process, with cache writeback, on an image opened just before (measured with
 * `break EVENT` on `blkdebug::IMAGE`, docs/semantics.md "Faults", QEMU part).
 * Each list is the union over the cases: allocating or overwriting, whole or
 * partial clusters, over allocated or unallocated clusters. First the event
 * nearly every instance reaches: shrinking draws towards it.
 */
export const qemuEventsByOp: Readonly<Record<FaultableOp['kind'], readonly BlkdebugEvent[]>> = {
  write: ['write_aio', 'l2_load', 'l2_update', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'refblock_alloc_hookup', 'refblock_alloc_write', 'pwritev_zero', 'read_aio', 'l2_alloc_cow_read', 'cow_read', 'cow_write', 'flush_to_os', 'flush_to_disk'],
  writeCompressed: ['l2_update', 'l2_load', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'flush_to_os', 'flush_to_disk'],
  writeZeroes: ['l2_load', 'l2_update', 'l2_alloc_write', 'l2_alloc_cow_read', 'l1_update', 'cluster_alloc', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'pwritev_zero', 'flush_to_os', 'flush_to_disk'],
  discard: ['l2_load', 'l2_update', 'cluster_free', 'refblock_load', 'refblock_update_part', 'refblock_alloc', 'l2_alloc_cow_read', 'l2_alloc_write', 'l1_update', 'cluster_alloc', 'flush_to_os', 'flush_to_disk'],
  resize: ['l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table', 'l1_shrink_write_table', 'l1_shrink_free_l2_clusters', 'cluster_free', 'refblock_update_part', 'pwritev_zero', 'flush_to_os', 'flush_to_disk'],
  flush: ['flush_to_os', 'flush_to_disk'],
};

/** The event `pick` chooses for `op` (any natural number: it wraps round the op's list). */
export function qemuEventFor(op: FaultableOp, pick: number): BlkdebugEvent {
  const events = qemuEventsByOp[op.kind];
  const event = events[pick % events.length];
  if (event === undefined) throw new Error(`no blkdebug events listed for ${op.kind}`);
  return event;
}
