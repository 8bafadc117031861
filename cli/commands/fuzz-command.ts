// Registration of `qcow2-verify fuzz`, kept light: the campaign (properties,
// corpus, QEMU oracles) loads only when the command runs. The implementation
// is in fuzz.ts.
import { randomInt } from 'node:crypto';
import type { Command } from 'commander';
import { exitCodes } from '../exit-codes.js';
import { qemuImgOptionHelp, qemuIoOptionHelp, type RawQemuToolOptions } from '../qemu-tool-options.js';
import type { RawFuzzOptions } from './fuzz.js';

export const defaultFuzzTime = '10m';

export function registerFuzz(program: Command): void {
  program
    .command('fuzz')
    .description('fuzz campaign: all properties and malformed images with fresh seeds; saves new failures in the corpus (exit 0 nothing new, 1 new failures, 2 cannot run)')
    .option('--impl <impl>', "implementation under test: ts | qemu | 'cmd:<command line>' (a program speaking docs/protocol.md; its applicable properties only, no image fuzzer)", 'ts')
    .option('--time <duration>', `time budget, e.g. 90s, 10m, 2h (default ${defaultFuzzTime})`)
    .option('--runs <n>', 'run budget instead of time: one run is one seed (a batch of sequences of one property, or one mutant)')
    .option('--shrink-time <duration>', 'bound each failure\'s shrinking, e.g. 5m: the smallest failure found by then is saved (default: a twentieth of the --time budget, 10 s at least; with --runs, shrinking goes on to a fixpoint)')
    .option('--seed <seed>', 'campaign seed: integer or git SHA; default drawn and printed')
    .option('--shard <i/n>', 'run shard i of n (1-based) with a disjoint seed stream, to split a campaign across machines; n alone takes i from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job, 0-based)')
    .option('--corpus <dir>', 'where new cases are written (default: corpus/cases of this package)')
    .option('--images', 'run only the malformed-image fuzzer')
    .option('--html <dir>', 'write one self-contained HTML page per new finding (property failure or malformed image) into this directory')
    .option('--qemu-img <path>', qemuImgOptionHelp)
    .option('--qemu-io <path>', qemuIoOptionHelp)
    .action(async (raw: RawFuzzOptions & RawQemuToolOptions) => {
      (await import('../qemu-tools.js')).applyQemuToolOptions(raw);
      const { parseFuzzOptions, runFuzz } = await import('./fuzz.js');
      const options = parseFuzzOptions(raw, () => randomInt(0, 2 ** 31 - 1));
      let stop = false;
      // First Ctrl-C: finish the current run and print the summary; the second one exits at once.
      process.once('SIGINT', () => {
        stop = true;
        process.once('SIGINT', () => process.exit(exitCodes.cannotRun));
      });
      process.exitCode = await runFuzz(options, { write: (text) => process.stdout.write(text), tty: process.stdout.isTTY === true, shouldStop: () => stop });
    });
}
