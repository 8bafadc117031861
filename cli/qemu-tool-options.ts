// --qemu-img / --qemu-io on the commands that run the oracle (gate, fuzz,
// replay): a QEMU developer gates their own build. Registration only, kept
// light (no oracle loads for --help); cli/qemu-tools.ts applies them.

export interface RawQemuToolOptions {
  qemuImg?: string;
  qemuIo?: string;
}

// The help names oracle/tool-path.ts's qemuToolVariables (test/cli/commands/lazy-commands.test.ts keeps them equal).
export const qemuImgOptionHelp = "the qemu-img binary the oracle runs, e.g. a build tree's (default: $QEMU_IMG, else qemu-img on PATH)";
export const qemuIoOptionHelp = 'the qemu-io binary the oracle runs (default: $QEMU_IO, else qemu-io on PATH)';
