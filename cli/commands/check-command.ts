// Registration of `qcow2-verify check`, kept light: the model's checker loads
// only when the command runs. The implementation is in check.ts.
import type { Command } from 'commander';
import { exitCodes } from '../exit-codes.js';
import type { CheckCommandOptions } from './check.js';
import { CliError } from '../fatal.js';
import { addFormatOption } from '../format-option.js';

export function registerCheck(program: Command): void {
  addFormatOption(program
    .command('check')
    .description("check an image's metadata like qemu-img check (exit 0 clean, 1 not completed, 2 corrupt, 3 leaks, 63 not a qcow2 image)"))
    .option('--output <format>', "'human' or 'json'", 'human')
    .argument('<file>', 'qcow2 image')
    .option('-U, --force-share', 'check even while another process writes the image')
    .action(async (file: string, raw: { output: string; forceShare?: boolean; format?: string }) => {
      if (raw.output !== 'human' && raw.output !== 'json') throw new CliError(`--output must be 'human' or 'json', got '${raw.output}'`, exitCodes.usage);
      const { runCheckWithChain } = await import('./check.js');
      const options: CheckCommandOptions = { output: raw.output, forceShare: raw.forceShare === true, ...(raw.format === undefined ? {} : { format: raw.format }) };
      process.exitCode = await runCheckWithChain(file, options, (l) => process.stdout.write(`${l}\n`), (l) => process.stderr.write(`${l}\n`));
    });
}
