// Assertions guard the engine's own invariants (style.md §5): a failure here is a
// bug in impl/, never a bad image, and the harness reports it as such.

export class AssertionError extends Error {
  constructor(message: string) {
    super(`qcow2 engine invariant broken: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertNever(value: never, what: string): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
