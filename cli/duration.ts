// Durations on the command line (`gate --time`, `fuzz --time`).
import { usageError } from './fatal.js';

/** `90`, `90s`, `10m`, `2h` → milliseconds; anything else is a usage error naming `flag`. */
export function parseDuration(text: string, flag = '--time'): number {
  const match = /^(\d+)([smh]?)$/.exec(text.trim());
  if (!match) usageError(`${flag} must look like 90s, 10m or 2h, got ${JSON.stringify(text)}`);
  const unit = match[2] === 'h' ? 3_600_000 : match[2] === 'm' ? 60_000 : 1000;
  const ms = Number(match[1]) * unit;
  if (!Number.isSafeInteger(ms) || ms <= 0) usageError(`${flag} must be positive, got ${JSON.stringify(text)}`);
  return ms;
}

/** 60000 → `60 s`, 150000 → `2 min 30 s`. */
export function formatBudgetMs(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s` : `${Math.floor(s / 60)} min${s % 60 === 0 ? '' : ` ${s % 60} s`}`;
}
