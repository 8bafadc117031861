// --qemu-img / --qemu-io on the commands that run the oracle (gate, fuzz,
// replay): a QEMU developer gates their own build. Registration only, kept
// light (no oracle loads for --help); cli/qemu-tools.ts applies them.
import type { Command } from 'commander';

export interface RawQemuToolOptions {
  qemuImg?: string;
  qemuIo?: string;
}

/** Adds the two flags; their help names oracle/tool-path.ts's qemuToolVariables (test/cli/commands/lazy-commands.test.ts keeps them equal). */
export function addQemuToolOptions(command: Command): Command {
  return command
    .option('--qemu-img <path>', "the qemu-img binary the oracle runs, e.g. a build tree's (default: $QEMU_IMG, else qemu-img on PATH)")
    .option('--qemu-io <path>', 'the qemu-io binary the oracle runs (default: $QEMU_IO, else qemu-io on PATH)');
}
