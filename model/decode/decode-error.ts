/** The image cannot be decoded: names the field, the value found and the limit it broke. */
export class DecodeError extends Error {
  constructor(
    readonly field: string,
    readonly value: string,
    readonly limit: string,
    readonly offset?: number,
  ) {
    super(`${field} = ${value} breaks ${limit}${offset === undefined ? '' : ` (at byte ${offset})`}`);
    this.name = 'DecodeError';
  }
}

/** A host offset or size from the image as a number, refused past 2^53 rather than rounded. */
export function toNumber(value: bigint, field: string, offset?: number): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(field, String(value), `<= 2^53 - 1`, offset);
  return Number(value);
}
