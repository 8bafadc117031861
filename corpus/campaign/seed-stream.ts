// Seed streams for campaigns split across machines. Shard I of N draws run k's
// seed as mix32(S + k*N + I): the inputs k*N + I are distinct for every (I, k)
// with k*N + I < 2^32, and mix32 is a bijection on 32-bit integers, so the
// shards' seeds never overlap — N machines share one campaign and merge their
// corpora by copying files.

export interface Shard {
  /** 0-based shard index, < count. */
  readonly index: number;
  readonly count: number;
}

export const shardCountMax = 1 << 16;

export class ShardParseError extends Error {
  constructor(
    readonly value: string,
    reason = `--shard must be I/N with 1 <= I <= N <= ${shardCountMax}, or N with ${completionIndexVariable} set, got ${JSON.stringify(value)}`,
  ) {
    super(reason);
    this.name = 'ShardParseError';
  }
}

/** The variable a Kubernetes Indexed Job sets in each pod: its completion index, 0 … completions − 1. */
export const completionIndexVariable = 'JOB_COMPLETION_INDEX';

/**
 * Parses `I/N` with I counted from 1, as vitest's and Playwright's --shard; or
 * `N` alone, when `completionIndex` (the value of JOB_COMPLETION_INDEX,
 * counted from 0) gives I: pod k of an Indexed Job with N completions runs
 * shard k + 1 of N, with no per-pod command line. An explicit I wins over the
 * variable.
 */
export function parseShard(text: string, completionIndex?: string): Shard {
  const trimmed = text.trim();
  const countOnly = /^(\d+)$/.exec(trimmed);
  if (countOnly) {
    const count = Number(countOnly[1]);
    if (!(count >= 1 && count <= shardCountMax)) throw new ShardParseError(text);
    if (completionIndex === undefined || completionIndex === '') {
      throw new ShardParseError(text, `--shard ${trimmed} takes shard I from ${completionIndexVariable} (a Kubernetes Indexed Job's completion index), which is not set; give --shard I/${trimmed}`);
    }
    const index = /^\d+$/.test(completionIndex.trim()) ? Number(completionIndex) : NaN;
    if (!(index >= 0 && index < count)) {
      throw new ShardParseError(text, `${completionIndexVariable}=${JSON.stringify(completionIndex)} is not a completion index of ${count} shards (0 … ${count - 1})`);
    }
    return { index, count };
  }
  const match = /^(\d+)\/(\d+)$/.exec(trimmed);
  if (!match) throw new ShardParseError(text);
  const ordinal = Number(match[1]);
  const count = Number(match[2]);
  if (!(count >= 1 && count <= shardCountMax && ordinal >= 1 && ordinal <= count)) throw new ShardParseError(text);
  return { index: ordinal - 1, count };
}

/** murmur3's 32-bit finalizer: a bijection on uint32 that spreads nearby inputs apart. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Runs per shard before inputs could wrap around 2^32 (and overlap another shard). */
export function runsPerShardMax(shard: Shard): number {
  return Math.floor((2 ** 32 - 1 - shard.index) / shard.count);
}

/** The seed of run k in this shard, as fast-check takes it (signed 32-bit). */
export function runSeed(campaignSeed: number, shard: Shard, k: number): number {
  if (!Number.isSafeInteger(k) || k < 0 || k > runsPerShardMax(shard)) {
    throw new RangeError(`run index ${k} outside 0…${runsPerShardMax(shard)} for shard ${shard.index}/${shard.count}`);
  }
  const input = (campaignSeed + k * shard.count + shard.index) % 2 ** 32;
  return mix32(input) | 0;
}
