// Registration of `qcow2-verify replay`, kept light: the corpus, the property
// runner and the image fuzzer load only when the command runs. The
// implementation is in replay.ts.
import type { Command } from 'commander';
import { exitCodes } from '../exit-codes.js';
import { CliError } from '../fatal.js';
import { qemuImgOptionHelp, qemuIoOptionHelp, type RawQemuToolOptions } from '../qemu-tool-options.js';
import type { ReplayOptions } from './replay.js';

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('reproduce a corpus case deterministically (exit 1 while it fails, 0 once it passes, 2 cannot run)')
    .argument('<case>', 'a corpus case file (corpus/cases/*.json)')
    .option('--trace', 'print each step, what the model and the implementation hold after it, and the first divergence')
    .option('--impl <impl>', "replay a property-failure case against ts, qemu or 'cmd:<command line>' (docs/protocol.md) instead of the case's own implementation")
    .option('--html <file>', 'also write the case as one self-contained HTML page: the script with its failing step, the divergence, the image after it')
    .option('--qemu-img <path>', qemuImgOptionHelp)
    .option('--qemu-io <path>', qemuIoOptionHelp)
    .action(async (file: string, raw: { trace?: boolean; impl?: string; html?: string } & RawQemuToolOptions) => {
      (await import('../qemu-tools.js')).applyQemuToolOptions(raw);
      const impl = raw.impl;
      if (impl !== undefined && impl !== 'ts' && impl !== 'qemu' && !(impl.startsWith('cmd:') && impl.length > 'cmd:'.length)) {
        throw new CliError(`--impl must be ts, qemu or cmd:<command line>, got ${impl}`, exitCodes.usage);
      }
      const options: ReplayOptions = { trace: raw.trace ?? false, ...(impl === undefined ? {} : { impl: impl as ReplayOptions['impl'] & string }), ...(raw.html === undefined ? {} : { html: raw.html }) };
      const { runReplay } = await import('./replay.js');
      process.exitCode = await runReplay(file, options, (line) => process.stdout.write(`${line}\n`));
    });
}
