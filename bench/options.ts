import { Command, InvalidArgumentError } from 'commander';

export interface BenchOptions {
  /** Size of the sequential workloads, in MiB (the quarter size runs too). */
  readonly sizeMiB: number;
  /** Number of random 4 KiB writes. */
  readonly writes: number;
  readonly seed: number;
  readonly jsonFile: string | undefined;
  /** When set, engine processes run with node --cpu-prof into this directory. */
  readonly cpuProfDir: string | undefined;
  /** `gate --runs` for the gate rows; undefined: each gate's default budget. */
  readonly gateRuns: number | undefined;
  /** Only the gate rows (the I/O workloads take minutes of their own). */
  readonly gatesOnly: boolean;
}

function positiveInteger(text: string): number {
  const value = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`expected a positive integer, got '${text}'`);
  return value;
}

/** Parses the benchmark's argv (without node and script) without running anything. */
export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const command = new Command('bench')
    .description('engine vs QEMU: sequential write, random 4 KiB writes, read back, the conformance gate')
    .option('--size <MiB>', 'size of the sequential workloads in MiB', positiveInteger, 256)
    .option('--writes <N>', 'number of random 4 KiB writes', positiveInteger, 20000)
    .option('--seed <n>', 'seed of the data and of the write offsets', positiveInteger, 20261125)
    .option('--json <file>', 'also write the results as JSON')
    .option('--cpu-prof <dir>', 'profile the engine processes (node --cpu-prof) into DIR')
    .option('--gate-runs <N>', 'sequences per property of the gate rows (default: the default budgets)', positiveInteger)
    .option('--gates-only', 'run only the gate rows')
    .exitOverride()
    .parse([...argv], { from: 'user' });
  const o = command.opts<{ size: number; writes: number; seed: number; json?: string; cpuProf?: string; gateRuns?: number; gatesOnly?: boolean }>();
  return {
    sizeMiB: o.size,
    writes: o.writes,
    seed: o.seed,
    jsonFile: o.json,
    cpuProfDir: o.cpuProf,
    gateRuns: o.gateRuns,
    gatesOnly: o.gatesOnly ?? false,
  };
}
