/**
 * The image cannot be decoded: names the field, its byte, the value found and the
 * limit it broke, worded as the engine words the same refusal ("invalid FIELD at
 * byte N: VALUE (LIMIT)"; `summary` replaces "invalid FIELD").
 */
export class DecodeError extends Error {
  constructor(
    readonly field: string,
    readonly value: string,
    readonly limit: string,
    readonly offset?: number,
    summary?: string,
  ) {
    super(`${summary ?? `invalid ${field}`}${offset === undefined ? '' : ` at byte ${offset}`}: ${value} (${limit})`);
    this.name = 'DecodeError';
  }
}

/** A host offset or size from the image as a number, refused past 2^53 rather than rounded. */
export function toNumber(value: bigint, field: string, offset?: number): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(field, String(value), `at most ${Number.MAX_SAFE_INTEGER} (2^53 - 1)`, offset);
  return Number(value);
}
