// A check is one clause of a property: something verified after every
// operation, at the end of the sequence, or both. Properties are lists of checks;
// the outcome comparison and the read comparison run in every property.
import type { CheckReport, DecodedImage, ImageOptions, ModelState, Op, Outcome } from '../../model/index.js';
import type { ImageDriver } from '../driver.js';
import type { FaultResult } from '../faults/fault-step.js';

/** The flushed image after the current step, decoded once and shared by the checks. */
export interface ImageSample {
  readonly bytes: Uint8Array;
  /** Throws PropertyViolation('structure') when the image cannot be decoded. */
  decoded(): DecodedImage;
  /** The model's checker on the bytes: what `qcow2-verify check` prints for this image. */
  report(): CheckReport;
}

export interface CheckEnv {
  readonly driver: ImageDriver;
  readonly options: ImageOptions;
  /** The model after the current step. */
  readonly state: ModelState;
  /** Flushes and samples the image (cached until the next step). */
  image(): Promise<ImageSample>;
  /** Memory a check keeps across one sequence (e.g. the space check's high-water mark). */
  readonly scratch: Map<string, unknown>;
}

export interface Check {
  readonly name: string;
  afterOp?(env: CheckEnv, op: Op, outcome: Outcome): Promise<void>;
  /** After a crash or I/O error step (crashConsistency); `env.state` is the model the fault step left. */
  afterFault?(env: CheckEnv, fault: FaultResult): Promise<void>;
  atEnd?(env: CheckEnv): Promise<void>;
}
