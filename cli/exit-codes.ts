// Every verdict the CLI can give is an exit code, listed once here and in the
// README. `check` copies qemu-img check's codes; gate/fuzz/replay use their own.
export const exitCodes = {
  ok: 0,
  // gate / fuzz / replay
  propertyFailed: 1,
  cannotRun: 2,
  // replay: the case fails, but not as recorded (another fault or another causing operation)
  failsDifferently: 3,
  // check (as qemu-img check)
  checkNotCompleted: 1,
  checkCorrupt: 2,
  checkLeaks: 3,
  checkUnsupported: 63,
  // io / create / snapshot / convert / info / map
  failed: 1,
  usage: 2,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];
