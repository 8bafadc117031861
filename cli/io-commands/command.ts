// One qemu-io command, parsed and checked, ready to run on an open image.
// Commands are plain data so a script can be parsed whole before the image is
// opened: a typo in the fifth -c never leaves the first four applied.

export type IoCommand = IoWrite | IoWriteZeroes | IoRead | IoDiscard | IoTruncate | IoFlush;

/** `write [-c] [-q] [-P PATTERN] OFF LEN` (qemu-io's default pattern is 0xcd); `-c` stores whole clusters compressed. */
export interface IoWrite {
  readonly kind: 'write';
  readonly offset: number;
  readonly length: number;
  readonly pattern: number;
  readonly compressed?: boolean;
  readonly quiet: boolean;
}
/** `write -z [-u] [-q] OFF LEN` */
export interface IoWriteZeroes {
  readonly kind: 'writeZeroes';
  readonly offset: number;
  readonly length: number;
  readonly unmap: boolean;
  readonly quiet: boolean;
}
/** `read [-q] [-P PATTERN] OFF LEN`; with a pattern, every byte is verified. */
export interface IoRead {
  readonly kind: 'read';
  readonly offset: number;
  readonly length: number;
  readonly pattern: number | undefined;
  readonly quiet: boolean;
}
/** `discard [-q] OFF LEN` */
export interface IoDiscard {
  readonly kind: 'discard';
  readonly offset: number;
  readonly length: number;
  readonly quiet: boolean;
}
/** `truncate SIZE` (grow or shrink, as qemu-io does). */
export interface IoTruncate {
  readonly kind: 'truncate';
  readonly size: number;
}
/** `flush` */
export interface IoFlush {
  readonly kind: 'flush';
}

/** qemu-io fills a write without -P with 0xcd (qemu-io-cmds.c write_f). */
export const defaultWritePattern = 0xcd;

/**
 * qemu-io refuses a read, write or discard longer than this
 * (BDRV_REQUEST_MAX_BYTES: INT_MAX rounded down to the 512-byte sector size).
 */
export const requestBytesMax = 2147483136;

/** The command as a qemu-io line, so a script can be echoed or replayed. */
export function formatIoCommand(command: IoCommand): string {
  const hex = (n: number) => `0x${n.toString(16)}`;
  switch (command.kind) {
    case 'write':
      return `write${command.compressed === true ? ' -c' : ''} -P ${hex(command.pattern)} ${hex(command.offset)} ${hex(command.length)}`;
    case 'writeZeroes':
      return `write -z${command.unmap ? ' -u' : ''} ${hex(command.offset)} ${hex(command.length)}`;
    case 'read':
      return command.pattern === undefined
        ? `read ${hex(command.offset)} ${hex(command.length)}`
        : `read -P ${hex(command.pattern)} ${hex(command.offset)} ${hex(command.length)}`;
    case 'discard':
      return `discard ${hex(command.offset)} ${hex(command.length)}`;
    case 'truncate':
      return `truncate ${hex(command.size)}`;
    case 'flush':
      return 'flush';
    default: {
      const never: never = command;
      throw new Error(`unknown io command ${JSON.stringify(never)}`);
    }
  }
}
