#!/usr/bin/env node
// The engine against QEMU on this machine, in one run (`npm run bench`):
//   (1) sequential write: convert a raw file of non-zero pseudo-random data to
//       qcow2 (engine `convert -O qcow2` vs `qemu-img convert -O qcow2`), at the
//       full size and at a quarter of it, so the two peaks show whether memory
//       grows with the image;
//   (2) N random 4 KiB writes into a new 1 GiB image, each side in one process
//       reading the same qemu-io script on stdin (engine `io` vs `qemu-io`);
//   (3) reading the full-size qcow2 image back to raw (`convert -O raw`);
//   (4), (5) compressed images, zlib and zstd (bench/compressed.ts).
//   (0) first, the fixed start-up cost of each side's process;
//   (6) last, the conformance gate against the engine and against QEMU at the
//       same budget (default, or --gate-runs N), in sequences per minute.
// Each side is a child process, timed from here, its peak RSS taken from GNU
// time -v. Every result is checked with qemu-img compare before it is
// reported: a fast wrong answer is not a benchmark result.
import { execFileSync } from 'node:child_process';
import { CommanderError } from 'commander';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { withDir } from 'tmp-promise';
import { compressedRows } from './compressed.js';
import { formatGateTable, measureGate, sequencesPerMinute, type GateRun } from './gate.js';
import { parseBenchArgs, type BenchOptions } from './options.js';
import { measure } from './measure.js';
import { formatTable, ratio, type BenchRow } from './table.js';
import { MiB, randomWriteBytes, randomWriteImageBytes, randomWriteScript, writeRandomRaw } from './workloads.js';

const cliMain = fileURLToPath(new URL('../cli/main.js', import.meta.url));

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function engineNodeArgs(options: BenchOptions): string[] {
  return options.cpuProfDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`];
}

/** (6): both gates, one after the other (each uses the machine alone). */
function runGates(options: BenchOptions): Promise<GateRun[]> {
  return withDir(
    async ({ path: dir }) => [
      await measureGate(cliMain, engineNodeArgs(options), dir, 'ts', options.gateRuns, options.seed),
      await measureGate(cliMain, engineNodeArgs(options), dir, 'qemu', options.gateRuns, options.seed),
    ],
    { unsafeCleanup: true, prefix: 'qcow2-verify-bench-gate-' },
  );
}

async function run(options: BenchOptions): Promise<BenchRow[]> {
  const engineArgs = engineNodeArgs(options);
  const engine = (args: string[], input?: string) => measure(process.execPath, [...engineArgs, cliMain, ...args], input);
  return withDir(
    async ({ path: dir }) => {
      // Fixed cost of starting each side, so the other rows can be read net of it.
      const rows: BenchRow[] = [
        { workload: '(0) process start (qcow2-verify --help vs qemu-img --help)', bytes: 0, engine: await engine(['--help']), qemu: await measure('qemu-img', ['--help']) },
      ];
      const sizesMiB = [Math.max(1, Math.floor(options.sizeMiB / 4)), options.sizeMiB];
      for (const sizeMiB of sizesMiB) {
        const raw = `${dir}/source-${sizeMiB}.raw`;
        await writeRandomRaw(raw, sizeMiB * MiB, options.seed);
        const [ours, theirs] = [`${dir}/engine-${sizeMiB}.qcow2`, `${dir}/qemu-${sizeMiB}.qcow2`];
        const e = await engine(['convert', '-O', 'qcow2', raw, ours]);
        const q = await measure('qemu-img', ['convert', '-O', 'qcow2', raw, theirs]);
        qemuImg('compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, ours);
        qemuImg('check', '-q', ours);
        rows.push({ workload: `(1) sequential write ${sizeMiB} MiB (convert raw→qcow2)`, bytes: sizeMiB * MiB, engine: e, qemu: q });
      }

      const script = randomWriteScript(options.writes, randomWriteImageBytes, options.seed);
      const [ours, theirs] = [`${dir}/engine-random.qcow2`, `${dir}/qemu-random.qcow2`];
      for (const path of [ours, theirs]) qemuImg('create', '-q', '-f', 'qcow2', path, String(randomWriteImageBytes));
      const e = await engine(['io', ours], script);
      const q = await measure('qemu-io', [theirs], script);
      qemuImg('compare', '-q', ours, theirs);
      qemuImg('check', '-q', ours);
      rows.push({ workload: `(2) ${options.writes} random 4 KiB writes, 1 GiB image (io vs qemu-io)`, bytes: options.writes * randomWriteBytes, engine: e, qemu: q });

      const full = options.sizeMiB;
      const image = `${dir}/qemu-${full}.qcow2`;
      const [outOurs, outTheirs] = [`${dir}/engine-back.raw`, `${dir}/qemu-back.raw`];
      const re = await engine(['convert', '-O', 'raw', image, outOurs]);
      const rq = await measure('qemu-img', ['convert', '-O', 'raw', image, outTheirs]);
      qemuImg('compare', '-q', '-f', 'raw', '-F', 'raw', `${dir}/source-${full}.raw`, outOurs);
      rows.push({ workload: `(3) read ${full} MiB back (convert qcow2→raw)`, bytes: full * MiB, engine: re, qemu: rq });
      rows.push(...(await compressedRows(dir, sizesMiB[0] ?? 1, options.seed, engine)));
      return rows;
    },
    { unsafeCleanup: true, prefix: 'qcow2-verify-bench-' },
  );
}

function machine(): string {
  const qemu = execFileSync('qemu-img', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? 'qemu-img ?';
  const memGiB = (os.totalmem() / 2 ** 30).toFixed(0);
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  return `${new Date().toISOString()} · ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'}) · ${memGiB} GiB RAM · load average ${load} · node ${process.version} · ${qemu}`;
}

try {
  const options = parseBenchArgs(process.argv.slice(2));
  const header = machine();
  process.stderr.write(`qcow2-verify bench: size ${options.sizeMiB} MiB, ${options.writes} random writes, seed ${options.seed}\n`);
  const rows = options.gatesOnly ? [] : await run(options);
  if (rows.length > 0) process.stdout.write(`${header}\n\n${formatTable(rows)}\n`);
  const gates = await runGates(options);
  process.stdout.write(`${rows.length > 0 ? '\n' : `${header}\n\n`}${formatGateTable(gates)}\n`);
  if (options.jsonFile !== undefined) {
    const json = {
      machine: header,
      options,
      rows: rows.map((r) => ({ ...r, ratio: ratio(r) })),
      gates: gates.map((g) => ({ ...g, sequencesPerMinute: sequencesPerMinute(g) })),
    };
    await writeFile(options.jsonFile, `${JSON.stringify(json, null, 2)}\n`);
  }
} catch (error) {
  // commander already printed its usage line; everything else gets one line.
  if (!(error instanceof CommanderError)) process.stderr.write(`qcow2-verify bench: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(error instanceof CommanderError && error.exitCode === 0 ? 0 : 1);
}
