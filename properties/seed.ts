// `--seed` takes an integer or a git SHA (TigerBeetle's parse_seed), so CI can
// pass the commit it tests and every commit explores a different, reproducible
// part of the space.

/** fast-check seeds are 32-bit signed integers. */
const seedMin = -(2 ** 31);
const seedMax = 2 ** 31 - 1;

export class SeedError extends Error {
  override readonly name = 'SeedError';
}

/** FNV-1a over the SHA's text, folded into fast-check's signed 32-bit range. */
export function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export function parseSeed(text: string): number {
  const trimmed = text.trim();
  if (/^-?\d+$/.test(trimmed)) {
    const value = Number(trimmed);
    if (!Number.isSafeInteger(value) || value < seedMin || value > seedMax) {
      throw new SeedError(`seed ${trimmed} is outside ${seedMin}..${seedMax}`);
    }
    return value;
  }
  if (/^[0-9a-f]{7,64}$/i.test(trimmed)) return hashSeed(trimmed.toLowerCase());
  throw new SeedError(`seed must be an integer or a git SHA (7-64 hex digits), got ${JSON.stringify(text)}`);
}
