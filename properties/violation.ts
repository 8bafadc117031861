// A property does not hold: thrown from a command or a check, caught by
// fast-check (which then shrinks), and turned into a property-failed RunResult.
// `check` names the exact check that saw it, since every property also compares
// outcomes.

export type CheckName =
  | 'outcome'
  | 'read'
  | 'structure'
  | 'check-image'
  | 'reopen'
  | 'space'
  | 'qemu-img-check'
  | 'qemu-img-compare'
  | 'qemu-img-map'
  | 'engine-map'
  | 'engine-info'
  | 'engine-check'
  | 'crash'
  | 'io-error';

export class PropertyViolation extends Error {
  override readonly name = 'PropertyViolation';
  constructor(
    readonly check: CheckName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`[${check}] ${message}`, options);
  }
}

/** Bytes as a short hex string for messages (at most `max` bytes). */
export function hexPreview(bytes: Uint8Array, max = 16): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return bytes.length > max ? `${shown} …` : shown;
}
