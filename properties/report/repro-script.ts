// A counterexample as a shell script a user runs on QEMU with plain qemu-img and
// qemu-io commands, so a failure can be shown to someone who does not have
// qcow2-verify. Guest ops between two snapshot commands or reopens run in one
// qemu-io process (one open of the image), as the QEMU driver runs them;
// snapshot ops are `qemu-img snapshot`. A write of seeded bytes reads them from
// a data file saved next to the script (`write -s FILE`, qemu-io's pattern-file
// write); a constant fill is `write -P`. A read whose expected bytes are one
// value is `read -P` (qemu-io names the first wrong offset); other reads dump
// (`read -v`) next to the file holding the model's bytes. At the end
// `qemu-img check` and, when the disk is small enough to save, `qemu-img
// compare` against the model's final disk judge the image. Faults run as the
// QEMU fault driver runs them (properties/faults/qemu-fault-driver.ts): a
// crash is `sigraise 9` in the qemu-io process that ran the ops since the last
// reopen (started with `-t unsafe`, as the driver's sessions are), then
// `qemu-img check -r all` on a lazy-refcounts image (iotest 039); a crash
// inside an op runs the ops since the last reopen, a break point, the op and a
// flush in one `-t unsafe` qemu-io on blkdebug (the driver's session, whose
// caches still hold those ops' metadata), killed by `kill -9` once a request
// is held there; an I/O error
// runs its op in a qemu-io process on `blkdebug:RULES:IMAGE` with the rule
// file saved next to the script, then again in a fresh process. After each
// fault the guest disk is read whole, as the gate reads it.
import { compressedWriteBytes, read, step, initialState, writeBytes, type ImageOptions, type Op } from '../../model/index.js';
import { backingAt, chainAfter, noChain, overlayBackingFile } from '../drivers/chain-files.js';
import type { Step } from '../steps.js';
import { blkdebugConfig } from '../../oracle/index.js';
import { formatFaultStep, isFaultStep, isSnapshotOp, qemuDefaultEvents, qemuOccurrence, type FaultableOp, type SnapshotOp } from '../faults/fault-step.js';
import { qemuEventFor } from '../faults/qemu-events.js';
import type { Counterexample } from './run-result.js';

/** The model's final disk is saved for `qemu-img compare` up to this size (bytes). */
export const expectedDiskBytesMax = 64 * 1024 * 1024;

export interface ReproFile {
  readonly name: string;
  readonly bytes: Uint8Array;
}

export interface ReproScript {
  /** The script text (POSIX sh), to be saved as `repro.sh` next to `files`. */
  readonly script: string;
  readonly files: readonly ReproFile[];
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** qemu-img create's `-o` for these options (as oracle/qemu-img/create.ts maps them). */
function createOptions(o: ImageOptions): string {
  const lazy = o.version === 3 && o.lazyRefcounts ? 'on' : 'off';
  return `cluster_size=${2 ** o.clusterBits},refcount_bits=${o.refcountBits},compat=${o.version === 2 ? '0.10' : '1.1'},lazy_refcounts=${lazy}${o.extendedL2 === true ? ',extended_l2=on' : ''}${o.compressionType === 'zstd' ? ',compression_type=zstd' : ''}`;
}

/**
 * After a fault, the whole guest disk is read as the gate reads it (qemu-img
 * convert), so a disk the fault left unreadable shows there (`error while
 * reading at byte …: Input/output error`) even when a later op hides it.
 */
const guestDiskRead = ['qemu-img convert -f qcow2 -O raw "$IMG" guest.raw; echo "guest disk read: exit $?"; rm -f guest.raw'];

function uniform(bytes: Uint8Array): number | undefined {
  const first = bytes[0];
  return first !== undefined && bytes.every((b) => b === first) ? first : undefined;
}

/**
 * The script and its data files for `c`. `title` goes in the header comment
 * (property, implementation, the failure line). Pure: the caller writes the files.
 */
export function reproScript(c: Counterexample, title: readonly string[]): ReproScript {
  const files: ReproFile[] = [];
  const lines = [
    '#!/bin/sh',
    ...title.map((t) => `# ${t}`),
    '# Runs the sequence on QEMU with qemu-img and qemu-io only; a refused command prints its error and the script goes on.',
    'cd "$(dirname "$0")" || exit 2',
    'IMG=image.qcow2',
    c.steps.some((s) => s.kind === 'createOverlay') ? 'rm -f "$IMG" layer-*.qcow2 layer-*.raw' : 'rm -f "$IMG"',
    `qemu-img create -q -f qcow2 -o ${createOptions(c.options)} "$IMG" ${c.options.virtualSize}`,
  ];
  let io: string[] = [];
  const endIo = (how: { readonly cache?: string; readonly image?: string } = {}) => {
    const cache = how.cache === undefined ? '' : `-t ${how.cache} `;
    if (io.length > 0) lines.push(`qemu-io ${cache}${io.map((cmd) => `-c '${cmd}'`).join(' ')} "${how.image ?? '$IMG'}"`);
    io = [];
  };
  /** `qemu-img snapshot` on `image` (a blkdebug filename under an I/O error), with no qemu-io on the image. */
  const snapshotOp = (op: SnapshotOp, image = '"$IMG"'): void => {
    endIo();
    const flag = op.kind === 'snapshotCreate' ? '-c' : op.kind === 'snapshotRevert' ? '-a' : '-d';
    lines.push(`qemu-img snapshot ${flag} '${op.name}' ${image}`);
  };
  /** A guest op, resize or flush as qemu-io command(s) of the current process (a write of seeded bytes saves them next to the script); a snapshot op as qemu-img. */
  const guestOp = (op: FaultableOp, index: number): void => {
    switch (op.kind) {
      case 'snapshotCreate':
      case 'snapshotRevert':
      case 'snapshotDelete':
        snapshotOp(op);
        break;
      case 'write': {
        const bytes = writeBytes(op);
        const value = uniform(bytes);
        if (value !== undefined) {
          io.push(`write -P ${hex(value)} ${hex(op.offset)} ${hex(op.length)}`);
        } else {
          const name = `data-${index + 1}.bin`;
          files.push({ name, bytes });
          io.push(`write -s ${name} ${hex(op.offset)} ${hex(op.length)}`);
        }
        break;
      }
      case 'writeCompressed': {
        // qemu-io's compressed write (`write -c`), from the same bytes the QEMU driver writes
        const bytes = compressedWriteBytes(op);
        const value = uniform(bytes);
        if (value !== undefined) {
          io.push(`write -c -P ${hex(value)} ${hex(op.offset)} ${hex(op.length)}`);
        } else {
          const name = `data-${index + 1}.bin`;
          files.push({ name, bytes });
          io.push(`write -c -s ${name} ${hex(op.offset)} ${hex(op.length)}`);
        }
        break;
      }
      case 'writeZeroes':
        io.push(`write -z${op.unmap ? ' -u' : ''} ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'discard':
        io.push(`discard ${hex(op.offset)} ${hex(op.length)}`);
        break;
      case 'resize':
        io.push(`truncate ${hex(op.size)}`);
        break;
      case 'flush':
        io.push('flush');
        break;
    }
  };
  let state = initialState(c.options);
  let chain = noChain;
  c.steps.forEach((s: Step, index) => {
    if (s.kind === 'read') {
      const length = Math.min(s.length, state.options.virtualSize - s.offset);
      if (length <= 0) return;
      const expected = read(state, s.offset, length);
      const value = uniform(expected);
      if (value !== undefined) {
        io.push(`read -P ${hex(value)} ${hex(s.offset)} ${hex(length)}`);
      } else {
        const name = `expected-${index + 1}.bin`;
        files.push({ name, bytes: expected });
        endIo();
        lines.push(`# step ${index + 1}: the model expects the bytes of ${name}`);
        io.push(`read -v ${hex(s.offset)} ${hex(length)}`);
        endIo();
      }
      return;
    }
    if (isFaultStep(s)) {
      if (s.kind === 'crash' && s.during !== undefined) {
        // the ops since the last reopen run in the killed process first, their metadata still in QEMU's caches (the driver's session)
        const pending = io;
        io = [];
        const event = s.during.event ?? qemuEventFor(s.during.op, state, 0);
        const [rules, output] = [`empty-${index + 1}.conf`, `killed-${index + 1}.txt`];
        files.push({ name: rules, bytes: new Uint8Array() });
        guestOp(s.during.op, index);
        io.push('flush');
        const commands = [...pending, `break ${event} crash`, ...io];
        io = [];
        lines.push(
          `# step ${index + 1}: ${formatFaultStep(s)}: qemu-io is killed (kill -9) once a request is held at the break point, or after the op and a flush`,
          `printf '%s\\n' ${commands.map((c) => `'${c}'`).join(' ')} | stdbuf -o0 qemu-io -t unsafe "blkdebug:${rules}:$IMG" >${output} 2>&1 &`,
          'pid=$!',
          `until grep -q "Suspended request 'crash'" ${output} || ! kill -0 "$pid" 2>/dev/null; do sleep 0.1; done`,
          'kill -9 "$pid" 2>/dev/null; wait "$pid"',
          `cat ${output}`,
        );
        lines.push(c.options.lazyRefcounts ? 'qemu-img check -r all "$IMG"; echo "exit $?"' : 'qemu-img check "$IMG"; echo "exit $?"', ...guestDiskRead);
      } else if (s.kind === 'crash') {
        io.push('sigraise 9');
        endIo({ cache: 'unsafe' });
        lines.push(`# step ${index + 1}: ${formatFaultStep(s)}: the qemu-io above is killed (sigraise 9), QEMU's caches lost`);
        lines.push(c.options.lazyRefcounts ? 'qemu-img check -r all "$IMG"; echo "exit $?"' : 'qemu-img check "$IMG"; echo "exit $?"', ...guestDiskRead);
      } else {
        endIo();
        lines.push(`# step ${index + 1}: ${formatFaultStep(s)}`);
        const rules = `blkdebug-${index + 1}.conf`;
        const event = s.event ?? qemuDefaultEvents[s.access];
        files.push({ name: rules, bytes: new TextEncoder().encode(blkdebugConfig({ event, occurrence: qemuOccurrence(s), errno: s.errno, once: !s.persistent })) });
        if (isSnapshotOp(s.op)) {
          // qemu-img on blkdebug: one process, no retry in it
          snapshotOp(s.op, `"blkdebug:${rules}:$IMG"`);
          lines.push('qemu-img check "$IMG"; echo "exit $?"');
          snapshotOp(s.op);
          state = step(state, s.op).state;
          return;
        }
        guestOp(s.op, index);
        // a once-error: the op again in the same process, and two flushes (a failed one leaves QEMU's caches dirty)
        if (!s.persistent) io.push(...io, 'flush', 'flush');
        else io.push('flush');
        endIo({ cache: 'writeback', image: `blkdebug:${rules}:$IMG` });
        lines.push('qemu-img check "$IMG"; echo "exit $?"', ...guestDiskRead);
        guestOp(s.op, index);
      }
      const carried = s.kind === 'ioError' ? s.op : s.during?.op;
      if (carried !== undefined) state = step(state, carried).state;
      return;
    }
    const op: Op = s;
    switch (op.kind) {
      case 'writeCompressed':
      case 'write':
      case 'writeZeroes':
      case 'discard':
      case 'resize':
      case 'flush':
        guestOp(op, index);
        break;
      case 'reopen':
        endIo();
        break;
      case 'snapshotCreate':
      case 'snapshotRevert':
      case 'snapshotDelete':
        snapshotOp(op);
        break;
      case 'createOverlay': {
        // the image becomes the backing file next to it (the QEMU driver's layout, chain-files.ts)
        endIo();
        const file = overlayBackingFile(chain, op);
        lines.push(
          file.format === 'raw' ? `qemu-img convert -S 0 -f qcow2 -O raw "$IMG" ${file.name} && rm "$IMG"` : `mv "$IMG" ${file.name}`,
          `qemu-img create -q -f qcow2 -b ${file.name} -F ${file.format} -o ${createOptions(op.options)} "$IMG" ${op.options.virtualSize}`,
        );
        break;
      }
      case 'rebase': {
        endIo();
        const target = backingAt(chain, op.depth);
        lines.push(`qemu-img rebase -f qcow2${op.unsafe ? ' -u' : ''} -b ${target === undefined ? "''" : `${target.name} -F ${target.format}`} "$IMG"`);
        break;
      }
      case 'commit':
        endIo();
        lines.push('qemu-img commit -f qcow2 "$IMG"');
        break;
      default: {
        const never: never = op;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
    const result = step(state, op);
    if (result.outcome.ok && (op.kind === 'createOverlay' || op.kind === 'rebase')) chain = chainAfter(chain, op);
    state = result.state;
  });
  endIo();
  lines.push('echo "--- qemu-img check (0 clean, 2 corrupt, 3 leaks):"', 'qemu-img check "$IMG"; echo "exit $?"');
  if (state.options.virtualSize <= expectedDiskBytesMax) {
    files.push({ name: 'expected.raw', bytes: read(state, 0, state.options.virtualSize) });
    lines.push('echo "--- qemu-img compare with the model\'s final disk (0 identical, 1 different):"', 'qemu-img compare -f raw -F qcow2 expected.raw "$IMG"; echo "exit $?"');
  }
  return { script: `${lines.join('\n')}\n`, files };
}
