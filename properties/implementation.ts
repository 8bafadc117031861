// What the gate runs for one `--impl`: which properties apply to it, with which
// driver, and which sequences may be drawn. A built-in implementation (ts,
// qemu, canary) takes every property but the readers'; a program speaking the
// adapter protocol (`cmd:<command line>`) declares its capabilities in its
// handshake and gets only what it declares: a read-write one the writer
// properties and the reader properties, a read-only one the reader properties.
import type { SequenceConstraints } from './arbitraries/sequence.js';
import { isCommandImplName, type DriverFactory, type ImplName } from './driver.js';
import { commandDriverFactory, probeCapabilities, readerDriverFactory, type CommandConstraints } from './drivers/command.js';
import { driverFactories } from './drivers/index.js';
import { leftOut, sequenceConstraintsFor, type Capabilities } from './protocol/capabilities.js';
import type { SessionConstraints } from './protocol/session.js';
import { properties, type PropertyDefinition, type PropertyName } from './registry.js';

export interface ImplementationPlan {
  readonly impl: ImplName;
  /** The handshake's declaration (cmd: implementations only). */
  readonly capabilities?: Capabilities;
  /** Why `def` does not apply to this implementation, or undefined when it does. */
  notApplicable(def: PropertyDefinition): string | undefined;
  /** The driver `def` runs (only for a property that applies). */
  factory(def: PropertyDefinition): DriverFactory;
  /** The property's own sequence defaults, narrowed to what the implementation declares. */
  sequence(def: PropertyDefinition): SequenceConstraints;
  /** What this implementation's runs leave out, one phrase each (properties not included). */
  leftOut(): readonly string[];
}

/** Narrows `base` by `caps`: the intersection of both, so that neither draws what the other rules out. */
export function narrowSequence(base: SequenceConstraints, narrow: SequenceConstraints): SequenceConstraints {
  const off = [...new Set([...(base.swarm?.off ?? []), ...(narrow.swarm?.off ?? [])])];
  const alwaysOn = (base.swarm?.alwaysOn ?? ['write']).filter((k) => !off.includes(k));
  return {
    ...base,
    image: { ...base.image, ...narrow.image },
    swarm: { ...base.swarm, off, alwaysOn },
  };
}

function builtinPlan(impl: ImplName & ('ts' | 'qemu' | 'canary')): ImplementationPlan {
  return {
    impl,
    notApplicable(def) {
      if (def.readerOf !== undefined) return 'a reader property: it judges a cmd: implementation reading images others built';
      if (def.drivers !== undefined && def.drivers[impl] === undefined) return `it has no ${impl} driver (faults are injected into our engine and QEMU only)`;
      return undefined;
    },
    factory: (def) => def.drivers?.[impl] ?? def.driver ?? driverFactories[impl],
    sequence: (def) => def.sequenceFor?.[impl] ?? def.sequence ?? {},
    leftOut: () => [],
  };
}

function commandPlan(impl: ImplName, c: CommandConstraints, caps: Capabilities): ImplementationPlan {
  return {
    impl,
    capabilities: caps,
    notApplicable(def) {
      if (def.drivers !== undefined) return 'the adapter protocol has no fault injection: crashes and I/O errors are injected into our engine and QEMU only';
      if (def.driver !== undefined) return 'its driver is built in (our engine and QEMU)';
      if (def.readerOf === undefined && caps.mode === 'read-only') return 'the implementation is read-only';
      return undefined;
    },
    factory: (def) => (def.readerOf === undefined ? commandDriverFactory(c) : readerDriverFactory(c, driverFactories[def.readerOf])),
    // chains for the properties that take them (registry.ts chainImpls), when the implementation declares them
    sequence: (def) => ({ ...narrowSequence(def.sequence ?? {}, sequenceConstraintsFor(caps)), chains: def.chainImpls !== undefined && sequenceConstraintsFor(caps).chains === true }),
    leftOut: () => leftOut(caps),
  };
}

/**
 * The plan for `impl`. For a cmd: implementation this starts the program once
 * for its handshake (ImplementationError when it fails it).
 */
export async function planImplementation(impl: ImplName, session: SessionConstraints = {}): Promise<ImplementationPlan> {
  if (!isCommandImplName(impl)) return builtinPlan(impl);
  const c: CommandConstraints = { ...session, commandLine: impl.slice('cmd:'.length) };
  return commandPlan(impl, c, await probeCapabilities(c));
}

/**
 * The implementation's own driver for stepping through a case (replay --trace,
 * --html): a built-in one's plain driver, a cmd: one's driver for `property`
 * (a reader property reads through it images another implementation builds).
 */
export async function driverFactoryFor(impl: ImplName, property: PropertyName): Promise<DriverFactory> {
  if (!isCommandImplName(impl)) return driverFactories[impl];
  return (await planImplementation(impl)).factory(properties[property]);
}
