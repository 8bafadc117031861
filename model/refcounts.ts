// Reference counts as qemu-img check rebuilds them (digest §5.2), in the
// model's domain: an L2 table counts once per L1 table that references it, a
// data cluster once per (L1 table, L2 entry) walk that reaches it.
import { geometry, type L1Table, type L2Table, type ModelState } from './state.js';

export interface Refcounts {
  /** L2 table id → number of L1 tables (active + snapshots) referencing it. */
  readonly l2Tables: Map<number, number>;
  /** Data cluster id → number of L1 walks reaching it. */
  readonly dataClusters: Map<number, number>;
}

export interface ExpectedRefcounts extends Refcounts {
  /** Active L1 index (non-empty entries only) → COPIED must be set. */
  readonly activeL1Copied: ReadonlyMap<number, boolean>;
  /** Guest cluster of an active normal/zero-alloc entry → COPIED must be set (compressed entries never carry it). */
  readonly activeL2Copied: ReadonlyMap<number, boolean>;
}

function allL1Tables(state: ModelState): L1Table[] {
  return [state.active, ...state.snapshots.map((s) => s.l1)];
}

/** Counts every reference in the state (fresh mutable maps, owned by the caller). */
export function countRefs(state: ModelState): Refcounts {
  const l2Tables = new Map<number, number>();
  const tables = new Map<number, L2Table>();
  for (const l1 of allL1Tables(state)) {
    for (const table of l1) {
      if (table === undefined) continue;
      const known = tables.get(table.id);
      if (known !== undefined && known !== table) throw new Error(`model invariant: two L2 tables share id ${table.id}`);
      tables.set(table.id, table);
      l2Tables.set(table.id, (l2Tables.get(table.id) ?? 0) + 1);
    }
  }
  const dataClusters = new Map<number, number>();
  for (const table of tables.values()) {
    const walks = l2Tables.get(table.id) ?? 0;
    for (const entry of table.entries.values()) {
      if (entry.kind === 'zero-plain') continue;
      dataClusters.set(entry.data.id, (dataClusters.get(entry.data.id) ?? 0) + walks);
    }
  }
  return { l2Tables, dataClusters };
}

/** The refcounts and COPIED flags a correct image of this state must carry. */
export function expectedRefcounts(state: ModelState): ExpectedRefcounts {
  const counts = countRefs(state);
  const g = geometry(state.options);
  const activeL1Copied = new Map<number, boolean>();
  const activeL2Copied = new Map<number, boolean>();
  state.active.forEach((table, l1Index) => {
    if (table === undefined) return;
    activeL1Copied.set(l1Index, counts.l2Tables.get(table.id) === 1);
    for (const [l2Index, entry] of table.entries) {
      if (entry.kind === 'zero-plain' || entry.kind === 'compressed') continue;
      activeL2Copied.set(l1Index * g.l2EntriesCount + l2Index, counts.dataClusters.get(entry.data.id) === 1);
    }
  });
  return { ...counts, activeL1Copied, activeL2Copied };
}

/**
 * Would adding one walk of `l1` (snapshot create: the active L1; revert: the
 * snapshot's L1) push any refcount past `refcountMax`? QEMU's
 * qcow2_update_snapshot_refcount(+1) refuses exactly then.
 */
export function wouldOverflow(state: ModelState, l1: L1Table): boolean {
  const max = geometry(state.options).refcountMax;
  const counts = countRefs(state);
  const added = new Map<number, number>();
  for (const table of l1) {
    if (table === undefined) continue;
    if ((counts.l2Tables.get(table.id) ?? 0) + 1 > max) return true;
    for (const entry of table.entries.values()) {
      if (entry.kind === 'zero-plain') continue;
      added.set(entry.data.id, (added.get(entry.data.id) ?? 0) + 1);
    }
  }
  for (const [id, n] of added) if ((counts.dataClusters.get(id) ?? 0) + n > max) return true;
  return false;
}
