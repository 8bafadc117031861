// Setup for the Stryker runs only (vitest.mutation.config.ts, after test/setup.ts):
// a mutant is killed by the first failing run, so fast-check stops there instead
// of shrinking the counterexample, which would cost seconds per killed mutant.
// Seeds and budgets stay those of npm test.
import fc from 'fast-check';

fc.configureGlobal({ ...fc.readConfigureGlobal(), endOnFailure: true });
