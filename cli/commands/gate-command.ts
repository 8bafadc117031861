// Registration of `qcow2-verify gate`, kept light: the property suite (fast-check,
// the model, the drivers) loads only when the command runs, so every other
// command and --help start without it. The implementation is in gate.ts.
import { randomInt } from 'node:crypto';
import type { Command } from 'commander';
import type { PropertyName } from '../../properties/index.js';
import { implNames } from '../../properties/driver.js';
import { qemuImgOptionHelp, qemuIoOptionHelp, type RawQemuToolOptions } from '../qemu-tool-options.js';
import type { RawGateOptions } from './gate.js';

/**
 * The registry's property names, for the help text only (properties/registry.ts
 * is heavy to load); test/cli/commands/lazy-commands.test.ts keeps them equal.
 * Option values are validated against the registry itself, in parseGateOptions.
 */
export const gatePropertyNamesForHelp: readonly PropertyName[] = ['readsAndOutcomes', 'structure', 'reopen', 'space', 'qemuJudges', 'handoff', 'crashConsistency', 'readsEngineImages', 'readsQemuImages'];

export function registerGate(program: Command): void {
  program
    .command('gate')
    .description('run the model-based properties against an implementation (exit 0 all held, 1 a property failed, 2 cannot run)')
    .option('--impl <impl>', `implementation under test: ${implNames.join(' | ')} | 'cmd:<command line>' (a program speaking docs/protocol.md)`, 'ts')
    .option('--time <duration>', 'time budget for the whole gate, e.g. 90s, 10m (default 60s; shrinking included, within 10 %)')
    .option('--runs <n>', 'sequences per property instead of a time budget (deterministic)')
    .option('--shrink-time <duration>', 'bound each failure\'s shrinking, e.g. 5m: the smallest failure found by then is reported (default: none beyond the --time budget; with --runs, shrinking goes on to a fixpoint)')
    .option('--workers <n>', 'batches run at once, each in a worker thread (default: the number of cores; 1 runs in this process)')
    .option('--seed <seed>', 'integer or git SHA; default: drawn and printed')
    .option('--shard <i/n>', 'run shard i of n (1-based): a seed of its own derived from --seed, disjoint from the other shards\', to spread one gate over machines; n alone takes i from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, 0-based)')
    .option('--path <path>', 'replay one failure: the path printed with it (needs --seed and --property)')
    .option('--property <name>', `run one property: ${gatePropertyNamesForHelp.join(' | ')}`)
    .option('--json <file>', 'write the results as JSON')
    .option('--junit <file>', 'write the results as JUnit XML')
    .option('--repro-dir <dir>', 'where each failure\'s QEMU shell script is saved (default: qcow2-verify-repro-<seed> in the temp directory)')
    .option('--html <dir>', 'write one self-contained HTML page per failure into this directory (the image after the failing step, with the model\'s view)')
    .option('--corpus <dir>', "a corpus whose known divergences of the implementation (known-qemu-divergence cases for qemu, known-divergence cases for others) are reported as known, not failed (the bundled corpus/cases always counts)")
    .option('--request-timeout <duration>', "with --impl cmd:…: how long one request may go unanswered before the implementation counts as hung, e.g. 2m (default 60s)")
    .option('--verbose', 'print every sequence\'s image options and swarm weights, and the full coverage histogram')
    .option('--qemu-img <path>', qemuImgOptionHelp)
    .option('--qemu-io <path>', qemuIoOptionHelp)
    .action(async (raw: RawGateOptions & RawQemuToolOptions) => {
      (await import('../qemu-tools.js')).applyQemuToolOptions(raw);
      const { parseGateOptions, runGate } = await import('./gate.js');
      const options = parseGateOptions(raw, () => randomInt(0, 2 ** 31 - 1));
      process.exitCode = await runGate(options, {
        out: (line) => process.stdout.write(`${line}\n`),
        // progress on stderr: stdout keeps the report clean for pipes
        progress: { write: (text) => process.stderr.write(text), tty: process.stderr.isTTY === true },
      });
    });
}
