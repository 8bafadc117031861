// `qemu-img info --output=json`: geometry, qcow2 feature state and the snapshot
// list (the JSON form of `qemu-img snapshot -l`, which has no JSON output itself).
import { runTool, stripToolPrefix } from '../run.js';
import { QemuImgError } from '../errors.js';
import { defined, JsonReader, type JsonObject } from './json.js';
import { shareFlag, type ReadConstraints } from './read-constraints.js';

export interface QemuSnapshotInfo {
  readonly id: string;
  readonly name: string;
  readonly vmStateSize: number;
  readonly dateSec: number;
  readonly dateNsec: number;
  readonly vmClockSec: number;
  readonly vmClockNsec: number;
  /** Absent for snapshots without the icount field (written by QEMU < 5.2). */
  readonly icount?: number;
}

export interface QemuQcow2Info {
  /** "0.10" (version 2) or "1.1" (version 3). */
  readonly compat: string;
  readonly lazyRefcounts: boolean;
  readonly refcountBits: number;
  readonly corrupt: boolean;
  readonly extendedL2: boolean;
  readonly compressionType?: string;
}

export interface QemuImageInfo {
  readonly format: string;
  readonly virtualSize: number;
  readonly actualSize?: number;
  readonly clusterSize?: number;
  readonly dirtyFlag?: boolean;
  /** Present for qcow2 images. */
  readonly qcow2?: QemuQcow2Info;
  readonly snapshots: readonly QemuSnapshotInfo[];
  readonly raw: JsonObject;
}

export async function qemuImgInfo(path: string, constraints: ReadConstraints = {}): Promise<QemuImageInfo> {
  const args = ['info', '--output=json', '-f', constraints.format ?? 'qcow2', ...shareFlag(constraints), path];
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
  const json = new JsonReader(args.join(' '));
  const raw = json.object(json.parse(run.stdout), 'info');
  const snapshots = raw.snapshots === undefined ? [] : json.array(raw.snapshots, 'snapshots');
  return {
    format: json.string(raw, 'format'),
    virtualSize: json.integer(raw, 'virtual-size'),
    ...defined('actualSize', json.optionalInteger(raw, 'actual-size')),
    ...defined('clusterSize', json.optionalInteger(raw, 'cluster-size')),
    ...defined('dirtyFlag', json.optionalBoolean(raw, 'dirty-flag')),
    ...defined('qcow2', qcow2Info(json, raw)),
    snapshots: snapshots.map((entry, index) => snapshotInfo(json, json.object(entry, `snapshots[${index}]`))),
    raw,
  };
}

function qcow2Info(json: JsonReader, raw: JsonObject): QemuQcow2Info | undefined {
  if (raw['format-specific'] === undefined) return undefined;
  const specific = json.object(raw['format-specific'], 'format-specific');
  if (json.string(specific, 'type') !== 'qcow2') return undefined;
  const data = json.object(specific.data, 'format-specific.data');
  return {
    compat: json.string(data, 'compat'),
    lazyRefcounts: json.optionalBoolean(data, 'lazy-refcounts') ?? false,
    refcountBits: json.integer(data, 'refcount-bits'),
    corrupt: json.optionalBoolean(data, 'corrupt') ?? false,
    extendedL2: json.optionalBoolean(data, 'extended-l2') ?? false,
    ...defined('compressionType', json.optionalString(data, 'compression-type')),
  };
}

function snapshotInfo(json: JsonReader, entry: JsonObject): QemuSnapshotInfo {
  return {
    id: json.string(entry, 'id'),
    name: json.string(entry, 'name'),
    vmStateSize: json.integer(entry, 'vm-state-size'),
    dateSec: json.integer(entry, 'date-sec'),
    dateNsec: json.integer(entry, 'date-nsec'),
    vmClockSec: json.integer(entry, 'vm-clock-sec'),
    vmClockNsec: json.integer(entry, 'vm-clock-nsec'),
    ...defined('icount', json.optionalInteger(entry, 'icount')),
  };
}
