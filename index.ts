// The package's main entry (`import … from 'qcow2-verify'`): the four parts as
// namespaces, because their names overlap (the model and the engine each have
// their own decoder and checker, by design), and the few names a project's own
// suite starts from. The parts are also entries of their own:
// 'qcow2-verify/model', '/impl', '/properties' and '/oracle' (docs/library.md).
export * as model from './model/index.js';
export * as impl from './impl/index.js';
export * as properties from './properties/index.js';
export * as oracle from './oracle/index.js';
export { checkSequence, sequence, runProperty, type CheckSequenceConstraints, type DriverFactory, type ImageDriver, type Sequence } from './properties/index.js';
