// The known divergence a failed run is, by every way the gate has to tell:
// the fault identity (gate-divergences.ts), and for QEMU the known faults
// seen later under other identities, recognised by replaying a prefix (a
// refused snapshot's leak, the disk a refused revert shrank, the stale tail
// after a grow). The gate and `fuzz --impl qemu` both ask it.
import type { ImplName, RunResult } from '../../properties/index.js';
import { attributeKnownLeak, matchKnownDivergence, type KnownDivergence, type KnownDivergences } from './gate-divergences.js';
import { attributeKnownShrink } from './gate-known-shrink.js';
import { attributeKnownStaleTail } from './gate-known-stale-tail.js';

/** The known divergence of `impl` that `result` is, or undefined (passed, not a property failure, or no known fault). Replays prefixes on QEMU only. */
export async function knownDivergenceOf(result: RunResult, known: KnownDivergences, impl: ImplName): Promise<KnownDivergence | undefined> {
  const direct = matchKnownDivergence(result, known);
  if (direct !== undefined || impl !== 'qemu') return direct;
  return (await attributeKnownLeak(result, known)) ?? (await attributeKnownShrink(result, known)) ?? (await attributeKnownStaleTail(result, known));
}
