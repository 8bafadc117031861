// How qemu-io's output is cut into one response per command.
//
// Measured on qemu-io 7.2 with stdin and stdout as pipes (not a tty): it still
// prints the prompt "qemu-io> " (no newline) and flushes stdout before reading
// each command line, once at start-up and once after every command. Every
// response line ends in "\n", so a prompt always starts a line. The session runs
// qemu-io with stderr merged into stdout at the OS level (2>&1), so error
// messages land inside the response of the command that caused them.
//
// A prompt-looking text can also appear inside a response, but never at the start
// of a line: response lines start with a hexdump offset ("00000000:  ab …", the
// ASCII column comes later on the line) or with qemu-io's own words.
import { QemuOutputError } from '../errors.js';

export const qemuIoPrompt = 'qemu-io> ';

/** Splits the merged output stream into responses; the first one is the start-up output. */
export class PromptFramer {
  private buffer = '';

  constructor(private readonly onFrame: (frame: string) => void) {}

  push(text: string): void {
    this.buffer += text;
    for (;;) {
      const index = this.promptIndex();
      if (index < 0) return;
      const frame = this.buffer.slice(0, index);
      this.buffer = this.buffer.slice(index + qemuIoPrompt.length);
      this.onFrame(frame);
    }
  }

  /** Output after the last prompt (what a dying process printed). */
  get pending(): string {
    return this.buffer;
  }

  private promptIndex(): number {
    for (let from = 0; ; ) {
      const index = this.buffer.indexOf(qemuIoPrompt, from);
      if (index <= 0 || this.buffer[index - 1] === '\n') return index;
      from = index + 1;
    }
  }
}

const hexdumpLine = /^([0-9a-f]{8,16}): {2}((?:[0-9a-f]{2} ){1,16})/;
const bytesPerHexdumpLine = 16;

/**
 * The exact bytes of a `read -v offset length` response. Every hexdump line must
 * carry the expected offset and 16 bytes (fewer only on the last), the total must
 * be `length`, and qemu-io's summary line must confirm the full read.
 */
export function parseHexdump(response: string, offset: number, length: number, command: string): Uint8Array {
  const out = new Uint8Array(length);
  let filled = 0;
  let confirmed = false;
  for (const line of response.split('\n')) {
    const match = hexdumpLine.exec(line);
    if (match === null) {
      if (line === `read ${length}/${length} bytes at offset ${offset}`) confirmed = true;
      continue;
    }
    const [, lineOffset = '', hex = ''] = match;
    if (Number.parseInt(lineOffset, 16) !== offset + filled || filled % bytesPerHexdumpLine !== 0) {
      throw new QemuOutputError('qemu-io', command, `hexdump line out of order at byte ${filled}`, line);
    }
    const digits = hex.replaceAll(' ', '');
    if (filled + digits.length / 2 > length) {
      throw new QemuOutputError('qemu-io', command, `hexdump longer than ${length} bytes`, line);
    }
    for (let i = 0; i < digits.length; i += 2) out[filled++] = Number.parseInt(digits.slice(i, i + 2), 16);
  }
  if (filled !== length || !confirmed) {
    throw new QemuOutputError('qemu-io', command, `hexdump gave ${filled} of ${length} bytes`, response);
  }
  return out;
}
