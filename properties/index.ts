// Public face of the property suite: the registry, the runners, the drivers and
// the report types and formatters.
export { properties, propertyNames, isPropertyName, type PropertyDefinition, type PropertyName } from './registry.js';
export { readsAndOutcomes, structure, reopen, space, qemuJudges, handoff, crashConsistency, readsEngineImages, readsQemuImages } from './registry.js';
export { runProperty, replayOps, type RunConstraints, type ReplayConstraints } from './runner.js';
export { checkSequence, type CheckSequenceConstraints } from './check-sequence.js';
export {
  implNames,
  isImplName,
  isBuiltinImplName,
  isCommandImplName,
  isOpErrorKind,
  ImplementationError,
  implementationError,
  okOutcome,
  refused,
  type ImageDriver,
  type DriverFactory,
  type EngineReports,
  type ImplName,
  type BuiltinImplName,
} from './driver.js';
export { driverFactories } from './drivers/index.js';
export { planImplementation, driverFactoryFor, type ImplementationPlan } from './implementation.js';
export { probeCapabilities } from './drivers/command.js';
export type { Capabilities } from './protocol/capabilities.js';
export { canaryDropEvery } from './drivers/canary.js';
export { parseSeed, hashSeed, SeedError } from './seed.js';
export { formatStep, formatSteps, type Step, type ReadStep } from './steps.js';
export { isFaultStep, formatFaultStep, type FaultStep, type CrashStep, type IoErrorStep } from './faults/fault-step.js';
export { PropertyViolation, type CheckName } from './violation.js';
export { emptyCoverage, mergeCoverage, type Coverage } from './coverage.js';
export { sequence, type Sequence, type SequenceConstraints } from './arbitraries/sequence.js';
export { imageOptions, type ImageOptionsConstraints } from './arbitraries/image-options.js';
export { swarmWeights, formatSwarm, commandKinds, type SwarmWeights, type SwarmConstraints, type CommandKind } from './arbitraries/swarm.js';
export { rangeSpec, resolveRange, type RangeSpec, type RangeConstraints } from './arbitraries/range.js';
export type { RunResult, RunStatus, Counterexample, Failure } from './report/run-result.js';
export { replayCommand } from './report/run-result.js';
export { formatText, formatCoverage, formatOptions } from './report/format-text.js';
export { formatJson } from './report/format-json.js';
export { formatJunit } from './report/format-junit.js';
