// QEMU's blkdebug filter (block/blkdebug.c) as qemu-io opens it:
// `blkdebug:CONFIG:IMAGE`, where CONFIG is an ini file of rules. An
// `inject-error` rule makes the I/O requests that follow an event fail with an
// errno, once (`once = "on"`: the first request after the event) or until the
// process ends (`once = "off"`), as iotest 026 does. blkdebug counts no
// occurrences itself; the Nth occurrence of an event is reached through its
// state machine: `set-state` rules move state 1 to 2 to … N on each occurrence,
// and the `inject-error` rule holds only in state N (blkdebug_debug_event
// matches every rule against the state the event found).

/**
 * The qcow2 events (BlkdebugEvent in qapi/block-core.json) that guest writes,
 * zero writes, compressed writes, discards, resizes and flushes reach after the
 * image is open. Left out: the events of opening (`reftable_load` fails the
 * open itself), of backing files and of snapshots, which the fault sequences
 * do not run under an error.
 */
export const blkdebugEvents = [
  'write_aio',
  'write_compressed',
  'read_aio',
  'l2_load',
  'l2_update',
  'l2_alloc_cow_read',
  'l2_alloc_write',
  'l1_update',
  'l1_grow_alloc_table',
  'l1_grow_write_table',
  'l1_grow_activate_table',
  'l1_shrink_write_table',
  'l1_shrink_free_l2_clusters',
  'cluster_alloc',
  'cluster_free',
  'cow_read',
  'cow_write',
  'refblock_load',
  'refblock_update',
  'refblock_update_part',
  'refblock_alloc',
  'refblock_alloc_hookup',
  'refblock_alloc_write',
  'refblock_alloc_write_blocks',
  'refblock_alloc_write_table',
  'refblock_alloc_switch_table',
  'reftable_grow',
  'reftable_update',
  'pwritev_zero',
  'flush_to_os',
  'flush_to_disk',
] as const;
export type BlkdebugEvent = (typeof blkdebugEvents)[number];

/** Occurrences of one event that a rule set can count (one `set-state` rule each). */
export const blkdebugOccurrenceMax = 64;

/** The errnos blkdebug injects here, by number (Linux). */
export const blkdebugErrnos = { EIO: 5, ENOSPC: 28 } as const;

export interface BlkdebugInjectError {
  readonly event: BlkdebugEvent;
  /** Which occurrence of `event` (1 = the first), counted from the open. */
  readonly occurrence: number;
  readonly errno: keyof typeof blkdebugErrnos;
  /** `once = "on"`: only the first request after the event fails; else every request until the process ends. */
  readonly once: boolean;
}

/** The blkdebug rule file for one injected error. RangeError for an occurrence outside 1..blkdebugOccurrenceMax. */
export function blkdebugConfig(rule: BlkdebugInjectError): string {
  if (!Number.isInteger(rule.occurrence) || rule.occurrence < 1 || rule.occurrence > blkdebugOccurrenceMax) {
    throw new RangeError(`blkdebug occurrence ${rule.occurrence} is outside 1..${blkdebugOccurrenceMax}`);
  }
  const lines: string[] = [];
  for (let state = 1; state < rule.occurrence; state++) {
    lines.push('[set-state]', `state = "${state}"`, `event = "${rule.event}"`, `new_state = "${state + 1}"`, '');
  }
  lines.push(
    '[inject-error]',
    `state = "${rule.occurrence}"`,
    `event = "${rule.event}"`,
    `errno = "${blkdebugErrnos[rule.errno]}"`,
    `once = "${rule.once ? 'on' : 'off'}"`,
    '',
  );
  return lines.join('\n');
}

/** The filename qemu-io opens to put blkdebug with the rules in `configPath` over `imagePath` (neither may contain ':'). */
export function blkdebugFilename(configPath: string, imagePath: string): string {
  for (const p of [configPath, imagePath]) if (p.includes(':')) throw new RangeError(`blkdebug paths cannot contain ':': ${p}`);
  return `blkdebug:${configPath}:${imagePath}`;
}
