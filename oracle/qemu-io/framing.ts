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

/**
 * A prompt is only a prompt at the start of a line, so the framer searches the
 * stream as if it began with a newline for this marker.
 */
const promptMarker = `\n${qemuIoPrompt}`;

/**
 * Splits the merged output stream into responses; the first one is the start-up output.
 *
 * Linear in the output: each pushed chunk is searched once, together with the
 * last `promptMarker.length - 1` characters before it (a prompt may be split
 * across chunks), and a response is joined from its chunks once, when its
 * prompt arrives. A `read -v` of a few MiB is tens of MB of text in chunks of
 * 64 KiB, so searching the whole pending response again on every chunk is quadratic.
 */
export class PromptFramer {
  /** The current response so far, as received. */
  private chunks: string[] = [];
  /**
   * The last characters of "\n" + the current response, at most
   * `promptMarker.length - 1` of them: where a marker split across chunks begins.
   */
  private carry = '\n';
  private scanned = 0;

  constructor(private readonly onFrame: (frame: string) => void) {}

  push(text: string): void {
    let rest = text;
    for (;;) {
      const window = this.carry + rest;
      const index = window.indexOf(promptMarker);
      // the search stops at the end of the first match
      this.scanned += index < 0 ? window.length : index + promptMarker.length;
      if (index < 0) {
        if (rest !== '') this.chunks.push(rest);
        this.carry = window.slice(-(promptMarker.length - 1));
        return;
      }
      // The marker's newline belongs to the response; where it starts in `rest`
      // (negative: inside the carry, i.e. in text pushed earlier).
      const end = index + 1 - this.carry.length;
      const frame = end >= 0 ? this.chunks.join('') + rest.slice(0, end) : this.chunks.join('').slice(0, end);
      rest = rest.slice(end + qemuIoPrompt.length);
      this.chunks = [];
      this.carry = '\n';
      this.onFrame(frame);
    }
  }

  /** Output after the last prompt (what a dying process printed). */
  get pending(): string {
    return this.chunks.join('');
  }

  /** Characters searched so far, counting the carried-over ones again: the framer's work, linear in the input. */
  get charsScanned(): number {
    return this.scanned;
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
