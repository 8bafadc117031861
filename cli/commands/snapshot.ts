import type { Command } from 'commander';
import { Qcow2Error, type SnapshotInfo } from '../../impl/index.js';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import { checkForceShare, dropBitmapsFlag, dropBitmapsHelp, forceShareFlags, forceShareHelp, openImage } from '../io-commands/open-image.js';
import { outputOf } from '../io-commands/output.js';
import { formatSize } from '../sizes.js';

/** A snapshot as listed; `icount` is shown when the engine reports it (qemu-img leaves it blank when unknown). */
export type ListedSnapshot = SnapshotInfo & { readonly icount?: bigint };

const nsPerSec = 1_000_000_000n;

/** qemu-img snapshot -l / info's table (block/qapi.c bdrv_snapshot_dump), without the trailing newline. */
export function formatSnapshotTable(snapshots: readonly ListedSnapshot[]): string[] {
  const header =
    'ID'.padEnd(10) + 'TAG'.padEnd(17) + 'VM SIZE'.padStart(8) + 'DATE'.padStart(20) + 'VM CLOCK'.padStart(13) + 'ICOUNT'.padStart(11);
  return [
    'Snapshot list:',
    header,
    ...snapshots.map(
      (s) =>
        `${s.id.padEnd(9)} ${s.name.padEnd(16)} ${formatSize(s.vmStateSize).padStart(8)}` +
        formatLocalDate(s.dateSec).padStart(20) +
        formatVmClock(s.vmClockNsec).padStart(13) +
        (s.icount === undefined ? '' : String(s.icount)).padStart(11),
    ),
  ];
}

/** strftime("%Y-%m-%d %H:%M:%S") in local time, as qemu-img prints it. */
export function formatLocalDate(dateSec: number): string {
  const d = new Date(dateSec * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** "%02d:%02d:%02d.%03d" of hours, minutes, seconds, milliseconds. */
export function formatVmClock(vmClockNsec: bigint): string {
  const secs = vmClockNsec / nsPerSec;
  const two = (n: bigint) => String(n).padStart(2, '0');
  const millis = (vmClockNsec / 1_000_000n) % 1000n;
  return `${two(secs / 3600n)}:${two((secs / 60n) % 60n)}:${two(secs % 60n)}.${String(millis).padStart(3, '0')}`;
}

/** qemu-img info --output=json's snapshot object, members in qemu-img 7.2's order. */
export function snapshotJson(s: ListedSnapshot): Record<string, unknown> {
  return {
    ...(s.icount === undefined ? {} : { icount: s.icount }),
    'vm-clock-nsec': s.vmClockNsec % nsPerSec,
    name: s.name,
    'date-sec': s.dateSec,
    'date-nsec': s.dateNsec,
    'vm-clock-sec': s.vmClockNsec / nsPerSec,
    id: s.id,
    'vm-state-size': s.vmStateSize,
  };
}

interface SnapshotFlags {
  create?: string;
  apply?: string;
  delete?: string;
  list?: boolean;
  forceShare?: boolean;
  format?: string;
  dropBitmaps?: boolean;
}

type Action = { kind: 'create' | 'apply' | 'delete'; name: string } | { kind: 'list' };

function chooseAction(opts: { create?: string; apply?: string; delete?: string; list?: boolean }): Action {
  const chosen: Action[] = [];
  if (opts.create !== undefined) chosen.push({ kind: 'create', name: opts.create });
  if (opts.apply !== undefined) chosen.push({ kind: 'apply', name: opts.apply });
  if (opts.delete !== undefined) chosen.push({ kind: 'delete', name: opts.delete });
  if (opts.list === true) chosen.push({ kind: 'list' });
  const [action, ...extra] = chosen;
  if (action === undefined || extra.length > 0) {
    throw new CliError('snapshot: give exactly one of -c NAME, -a NAME, -d NAME or -l', exitCodes.usage);
  }
  return action;
}

/**
 * qemu-img snapshot -a refuses while the image has bitmaps (bdrv_snapshot_goto:
 * "Device has active dirty bitmaps"), whatever their flags; checked on a
 * read-only open, so a refused apply writes nothing.
 */
async function refuseApplyWithBitmaps(file: string, name: string): Promise<void> {
  const image = await openImage(file, { readOnly: true });
  const { bitmaps } = await image.info();
  await image.close();
  if (bitmaps.length > 0) {
    const names = bitmaps.map((bm) => `'${bm.name}'`).join(', ');
    throw new CliError(`could not apply snapshot '${name}': Device has active dirty bitmaps (${names}); ${dropBitmapsFlag} discards them first`);
  }
}

export function register(program: Command): void {
  addFormatOption(program
    .command('snapshot'))
    .description('create, apply (revert to), delete or list internal snapshots (like qemu-img snapshot)')
    .argument('<file>', 'qcow2 image')
    .option('-c, --create <name>', 'create a snapshot of the current state')
    .option('-a, --apply <name>', 'revert the image to the snapshot with this ID, else the first with this name')
    .option('-d, --delete <name>', 'delete the first snapshot with this name (a name only, never an ID, like qemu-img 7.2)')
    .option('-l, --list', 'list the snapshots')
    .option(forceShareFlags, `${forceShareHelp}: -l`)
    .option(dropBitmapsFlag, dropBitmapsHelp)
    .action(async (file: string, opts: SnapshotFlags, cmd: Command) => {
      checkedFormat('snapshot', opts.format);
      const action = chooseAction(opts);
      const readOnly = action.kind === 'list';
      checkForceShare(opts.forceShare === true, readOnly, 'snapshot');
      const dropBitmaps = opts.dropBitmaps === true;
      if (action.kind === 'apply' && !dropBitmaps) await refuseApplyWithBitmaps(file, action.name);
      const image = await openImage(file, { readOnly, forceShare: opts.forceShare === true, dropBitmaps });
      if (action.kind === 'list') {
        const snapshots = image.snapshots.list();
        await image.close();
        if (snapshots.length > 0) for (const line of formatSnapshotTable(snapshots)) outputOf(cmd).out(line);
        return;
      }
      try {
        if (action.kind === 'create') await image.snapshots.create(action.name);
        else if (action.kind === 'apply') await image.snapshots.revert(action.name);
        else await image.snapshots.delete(action.name);
      } catch (error) {
        if (!(error instanceof Qcow2Error)) throw error;
        // A refused snapshot operation leaves the image unchanged; close it cleanly.
        await image.close();
        const verb = action.kind === 'apply' ? 'apply' : action.kind;
        throw new CliError(`could not ${verb} snapshot '${action.name}': ${error.message}`);
      }
      await image.close();
    });
}
