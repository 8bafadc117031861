import { Command } from 'commander';
import { commands } from './commands/index.js';
import { outputOf } from './io-commands/output.js';

/** Builds the CLI without running it, so tests can parse argv in-process. */
export function buildProgram(): Command {
  const program = new Command('qcow2-verify')
    .description('Property-based verification suite and reference model for QCOW2 images')
    .showHelpAfterError(false)
    .configureOutput({ outputError: (text, write) => write(`qcow2-verify: ${text.replace(/^error: /, '')}`) })
    .option('-V, --version', "print qcow2-verify's version and the versions of qemu-img and qemu-io it is judged against")
    .exitOverride()
    .action(async (opts: { version?: boolean }, cmd: Command) => {
      // Without a subcommand only --version does something; anything else shows the usage.
      if (opts.version !== true) cmd.help({ error: true });
      const { versionLines } = await import('./version.js');
      const out = outputOf(cmd).out;
      for (const line of await versionLines()) out(line);
    });
  for (const register of commands) register(program);
  return program;
}
