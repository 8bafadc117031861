// The --seed and --shard options that gate and fuzz share.
import { completionIndexVariable, parseShard, ShardParseError, type Shard } from '../corpus/campaign/seed-stream.js';
import { parseSeed, SeedError } from '../properties/index.js';
import { usageError } from './fatal.js';

/** `--seed` as given (a 32-bit seed, properties/seed.ts), or `drawSeed()` without it; a bad one is a usage error. */
export function seedOption(text: string | undefined, drawSeed: () => number): number {
  try {
    return text === undefined ? drawSeed() : parseSeed(text);
  } catch (error) {
    if (error instanceof SeedError) usageError(`--seed: ${error.message}`);
    throw error;
  }
}

/** `--shard i/n` (1-based) or `n` with the index from JOB_COMPLETION_INDEX in `env`, as a 0-based Shard; absent: the one shard. A bad one is a usage error. */
export function shardOption(text: string | undefined, env: Readonly<Record<string, string | undefined>>): Shard {
  if (text === undefined) return { index: 0, count: 1 };
  try {
    return parseShard(text, env[completionIndexVariable]);
  } catch (error) {
    if (error instanceof ShardParseError) usageError(error.message);
    throw error;
  }
}
