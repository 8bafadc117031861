// `qemu-img map --output=json`: how QEMU sees the guest address space, as merged
// ranges {start, length, depth, present, zero, data, offset?}.
import { QemuImgError } from '../errors.js';
import { runTool, stripToolPrefix } from '../run.js';
import { defined, JsonReader } from './json.js';
import { shareFlag, type ReadConstraints } from './read-constraints.js';

export interface QemuMapEntry {
  readonly start: number;
  readonly length: number;
  /** 0 = this image, 1 = its backing file, … */
  readonly depth: number;
  /** Allocated in some layer (false: reads fall through to zeros). */
  readonly present: boolean;
  readonly zero: boolean;
  /** Backed by host data (false for zero and unallocated ranges). */
  readonly data: boolean;
  /** Host offset of the data; only for ranges with data (and not compressed). */
  readonly offset?: number;
}

export async function qemuImgMap(path: string, constraints: ReadConstraints = {}): Promise<QemuMapEntry[]> {
  const args = ['map', '--output=json', '-f', constraints.format ?? 'qcow2', ...shareFlag(constraints), path];
  const run = await runTool('qemu-img', args);
  if (run.exitCode !== 0) throw new QemuImgError(args, run.exitCode, stripToolPrefix('qemu-img', run.stderr));
  const json = new JsonReader(args.join(' '));
  return json.array(json.parse(run.stdout), 'map').map((item, index) => {
    const entry = json.object(item, `map[${index}]`);
    return {
      start: json.integer(entry, 'start'),
      length: json.integer(entry, 'length'),
      depth: json.integer(entry, 'depth'),
      present: json.boolean(entry, 'present'),
      zero: json.boolean(entry, 'zero'),
      data: json.boolean(entry, 'data'),
      ...defined('offset', json.optionalInteger(entry, 'offset')),
    };
  });
}
