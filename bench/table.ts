import type { Measurement } from './measure.js';

/** One workload, run by the engine and by QEMU on the same input. */
export interface BenchRow {
  readonly workload: string;
  /** Guest bytes the workload moves, for MiB/s (0: none, MiB/s shows '-'). */
  readonly bytes: number;
  readonly engine: Measurement;
  readonly qemu: Measurement;
}

const MiB = 1 << 20;

/** engine time / QEMU time: below 1 the engine is faster. */
export function ratio(row: BenchRow): number {
  return row.engine.wallSeconds / row.qemu.wallSeconds;
}

function mibPerSec(bytes: number, m: Measurement): string {
  return bytes === 0 ? '-' : (bytes / MiB / m.wallSeconds).toFixed(1);
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** A Markdown table, ready to paste into the README. */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = [
    'workload', 'engine s', 'engine MiB/s', 'engine peak RSS MiB', 'qemu s', 'qemu MiB/s', 'qemu peak RSS MiB', 'ratio (engine/qemu time)',
  ];
  const body = rows.map((r) => [
    r.workload,
    r.engine.wallSeconds.toFixed(2),
    mibPerSec(r.bytes, r.engine),
    mib(r.engine.peakRssBytes),
    r.qemu.wallSeconds.toFixed(2),
    mibPerSec(r.bytes, r.qemu),
    mib(r.qemu.peakRssBytes),
    ratio(r).toFixed(2),
  ]);
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...body.map(line)].join('\n');
}
