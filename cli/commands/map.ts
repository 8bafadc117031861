import type { Command } from 'commander';
import { Qcow2Error, type MapEntry } from '../../impl/index.js';
import { CliError } from '../fatal.js';
import { addFormatOption, checkedFormat } from '../format-option.js';
import { forceShareFlags, forceShareHelp, openImage } from '../io-commands/open-image.js';
import { outputOf } from '../io-commands/output.js';
import { parseOutputFormat } from './info.js';

/** qemu-img's entry_mergeable: same flags, and host offsets (if any) contiguous. */
function mergeable(a: MapEntry, b: MapEntry): boolean {
  if (a.length === 0 || a.depth !== b.depth || a.filename !== b.filename) return false;
  if (a.present !== b.present || a.zero !== b.zero || a.data !== b.data) return false;
  if ((a.offset === undefined) !== (b.offset === undefined)) return false;
  return a.offset === undefined || b.offset === a.offset + a.length;
}

/** Merges neighbouring entries exactly as qemu-img map does, so both print the same list. */
export function mergeMap(entries: readonly MapEntry[]): MapEntry[] {
  const merged: MapEntry[] = [];
  for (const entry of entries) {
    const last = merged.at(-1);
    if (last !== undefined && mergeable(last, entry) && last.start + last.length === entry.start) {
      merged[merged.length - 1] = { ...last, length: last.length + entry.length };
    } else {
      merged.push({ ...entry });
    }
  }
  return merged;
}

/** `qemu-img map --output=json`: one entry per line, members in qemu-img's order. */
export function mapJson(entries: readonly MapEntry[]): string {
  const lines = entries.map(
    (e) =>
      `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, ` +
      `"zero": ${e.zero}, "data": ${e.data}${e.offset === undefined ? '' : `, "offset": ${e.offset}`}}`,
  );
  return `[${lines.join(',\n')}]`;
}

/**
 * `qemu-img map` human output: only ranges with data, printf("%#-16x") columns.
 * Like qemu-img (dump_map_entry), it stops at the first data without a host
 * offset (compressed clusters), which the human format cannot show: the lines
 * before it, then `refused`, the error to report. Data found in a backing file
 * names that file (as opened: the name resolved against the overlay's directory).
 */
export function mapText(entries: readonly MapEntry[], filename: string): { readonly lines: string[]; readonly refused?: string } {
  const hex = (n: number) => (n === 0 ? '0' : `0x${n.toString(16)}`).padEnd(16);
  const lines = [`${'Offset'.padEnd(16)}${'Length'.padEnd(16)}${'Mapped to'.padEnd(16)}File`];
  for (const e of entries) {
    if (e.data && e.offset === undefined) return { lines, refused: 'map: File contains external, encrypted or compressed clusters (use --output=json)' };
    if (e.data && !e.zero) lines.push(`${hex(e.start)}${hex(e.length)}${hex(e.offset ?? 0)}${e.filename ?? filename}`);
  }
  return { lines };
}

export function register(program: Command): void {
  addFormatOption(program
    .command('map'))
    .description("show how the engine maps the guest disk to the file (like qemu-img map)")
    .argument('<file>', 'qcow2 image')
    .option('--output <format>', 'human, json, or html (a self-contained picture of the file on stdout, for any image, clean or damaged)', 'human')
    .option(forceShareFlags, forceShareHelp)
    .action(async (file: string, opts: { output: string; forceShare?: boolean; format?: string }, cmd: Command) => {
      checkedFormat('map', opts.format);
      if (opts.output === 'html') {
        const { mapHtml } = await import('./map-html.js');
        outputOf(cmd).out(mapHtml(file));
        return;
      }
      const format = parseOutputFormat(opts.output);
      const image = await openImage(file, { readOnly: true, forceShare: opts.forceShare === true });
      let entries: MapEntry[];
      try {
        entries = mergeMap(await image.map());
      } catch (error) {
        // damage met while mapping (an L2 entry QEMU also refuses): one line, as qemu-img's "Could not read file metadata"
        if (error instanceof Qcow2Error) throw new CliError(`map: could not read file metadata: ${error.message} (${error.code})`);
        throw error;
      } finally {
        await image.close();
      }
      const out = outputOf(cmd).out;
      if (format === 'json') out(mapJson(entries));
      else {
        const text = mapText(entries, file);
        for (const line of text.lines) out(line);
        if (text.refused !== undefined) throw new CliError(text.refused);
      }
    });
}
