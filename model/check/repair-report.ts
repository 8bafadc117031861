// What `qemu-img check -r leaks|all` would repair and report, without writing
// (qcow2_check_refcounts with BDRV_FIX_LEAKS / BDRV_FIX_ERRORS: compare_refcounts,
// rebuild_refcount_structure, check_oflag_copied, qcow2_check_fix_snapshot_table;
// qemu-img.c collect_image_check prints the fixed counts, then checks again and
// prints that check).
import type { ByteReader } from '../decode/byte-reader.js';
import { checkWith } from './check-image.js';
import { verdictOf, type CheckReport } from './report.js';

/** `-r leaks` lowers counts above their references; `-r all` sets every count to its references and the COPIED flags to match. */
export type RepairMode = 'leaks' | 'all';

export type RepairReport =
  /** Nothing to repair: qemu-img prints the one check. */
  | { readonly kind: 'nothing'; readonly check: CheckReport }
  /**
   * `-r leaks` where QEMU must rebuild the refcount structures (a referenced
   * cluster counted 0, a bad refcount table entry or block), which only
   * `-r all` may: "ERROR need to rebuild refcount structures", "Check failed",
   * exit 1; nothing is written.
   */
  | { readonly kind: 'refused'; readonly check: CheckReport; readonly message: string }
  /**
   * Repaired: `leaksFixed` counts lowered, `corruptionsFixed` counts raised,
   * COPIED flags set right and incomplete snapshot table entries completed;
   * `remaining` is the second check, what qemu-img prints after "Double
   * checking the fixed image now...". `rebuilt`: `-r all` rebuilt the refcount
   * structures (QEMU writes new ones at the end of the file: the image end
   * offset of `remaining` is that of a repair in place).
   */
  | {
      readonly kind: 'repaired';
      readonly check: CheckReport;
      readonly leaksFixed: number;
      readonly corruptionsFixed: number;
      readonly rebuilt: boolean;
      readonly remaining: CheckReport;
    };

const copiedMessage = /^ERROR OFLAG_COPIED /;

/**
 * The repair report of `qemu-img check -r MODE` for the image `reader` holds.
 * The second check is the model's checker with the repaired counts in place
 * of the file's. Not predicted: what opening an image with persistent bitmaps
 * read-write changes before the check (QEMU rewrites their directory then),
 * and QEMU's rebuild failing on the image (it writes past a damaged table).
 * An image the checker cannot check has nothing repaired.
 */
export function repairReport(reader: ByteReader, mode: RepairMode): RepairReport {
  const first = checkWith(reader, new Map());
  const check = first.report;
  if (check.verdict === 'cannot-check' || (check.leaks === 0 && check.corruptions === 0)) return { kind: 'nothing', check };
  const rebuild = first.refblockErrors > 0 || first.mismatches.some((m) => m.refcount === 0n && m.reference > 0n);
  if (rebuild && mode === 'leaks') return { kind: 'refused', check, message: 'ERROR need to rebuild refcount structures' };
  const repaired = new Map<number, bigint>();
  let leaksFixed = 0;
  let countsRaised = 0;
  for (const m of first.mismatches) {
    if (m.refcount > m.reference) leaksFixed++;
    else if (mode === 'all') countsRaised++;
    else continue;
    repaired.set(m.cluster, m.reference);
  }
  const second = checkWith(reader, repaired);
  const snapshotsCompleted = mode === 'all' ? second.snapshotEntriesIncomplete : 0;
  // Rebuilt refcount structures are sound: the refcount table and block errors go with the old ones.
  const refblocksRebuilt = rebuild ? second.refblockErrors : 0;
  const copied = second.report.messages.filter((m) => copiedMessage.test(m)).length;
  const otherCorruptions = second.report.corruptions - copied - snapshotsCompleted - refblocksRebuilt;
  // check_oflag_copied runs on the repaired counts; -r leaks sets the flags only when nothing else is left wrong.
  const copiedFixed = mode === 'all' || (otherCorruptions === 0 && second.report.checkErrors === 0) ? copied : 0;
  // A rebuild comes before check_oflag_copied: the first check's COPIED errors (against the old counts) are not among the ones it fixed.
  const copiedBefore = check.messages.filter((m) => copiedMessage.test(m)).length;
  const corruptionsFixed = rebuild
    ? check.corruptions - copiedBefore - otherCorruptions + copiedFixed
    : countsRaised + copiedFixed + snapshotsCompleted;
  if (leaksFixed === 0 && corruptionsFixed === 0) return { kind: 'nothing', check };
  const corruptions = otherCorruptions + copied - copiedFixed;
  const remaining: CheckReport = {
    ...second.report,
    corruptions,
    verdict: verdictOf({ corruptions, leaks: second.report.leaks, checkErrors: second.report.checkErrors }),
    messages: copiedFixed > 0 ? second.report.messages.filter((m) => !copiedMessage.test(m)) : second.report.messages,
  };
  return { kind: 'repaired', check, leaksFixed, corruptionsFixed, rebuilt: rebuild, remaining };
}
