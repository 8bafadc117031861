// The "real" side of the model-based run: the driver under test, the checks of
// the property being run, the coverage histogram and the log of steps actually
// executed (the counterexample, once fast-check has shrunk it).
import {
  bufferReader,
  checkImage,
  decodeImage,
  packedOverflowCluster,
  packingDecidesOverflow,
  read,
  step as modelStep,
  type CheckReport,
  type DecodedImage,
  type ImageOptions,
  type ModelState,
  type Op,
  type Outcome,
} from '../model/index.js';
import type { Check, CheckEnv, ImageSample } from './checks/check.js';
import { readGuest } from './checks/guest-read.js';
import type { ModelBox } from './commands/command.js';
import {
  l1Memory,
  recordChainRead,
  recordCompressedLayout,
  recordHeaderChange,
  recordL1Corner,
  recordOutcome,
  recordPackedOverflow,
  recordStep,
  type Coverage,
  type HeaderSample,
  type L1Memory,
} from './coverage.js';
import type { ImageDriver } from './driver.js';
import { firstDifference, formatStep, type ReadStep, type Step } from './steps.js';
import { PropertyViolation, hexPreview } from './violation.js';
import { isFaultStep } from './faults/fault-step.js';
import { runFaultStep } from './faults/run-fault.js';
import { isQemuFaultDriver } from './faults/qemu-fault-driver.js';
import { runQemuFaultStep } from './faults/run-qemu-fault.js';

export class RunContext {
  readonly steps: Step[] = [];
  readonly scratch = new Map<string, unknown>();
  private sample: ImageSample | undefined;
  private lastHeader: HeaderSample | undefined;
  private readonly l1: L1Memory;

  constructor(
    readonly driver: ImageDriver,
    readonly options: ImageOptions,
    readonly checks: readonly Check[],
    readonly coverage: Coverage,
  ) {
    this.l1 = l1Memory(options);
  }

  async runStep(m: ModelBox, step: Step): Promise<void> {
    this.steps.push(step);
    recordStep(this.coverage, m.state, step);
    if (step.kind === 'read') return this.compareRead(m, step);
    if (isFaultStep(step)) {
      const fault = isQemuFaultDriver(this.driver)
        ? await runQemuFaultStep(m, step, this.driver, this.scratch, this.coverage)
        : await runFaultStep(m, step, this.driver, this.scratch, this.coverage);
      this.sample = undefined;
      const env = this.env(m);
      for (const check of this.checks) await check.afterFault?.(env, fault);
      return;
    }
    const modelResult = modelStep(m.state, step);
    const packing = modelResult.outcome.ok ? packingDecidesOverflow(m.state, step) : undefined;
    const before = packing === undefined ? undefined : await this.driver.imageBytes();
    const actual = await this.driver.apply(step);
    const { state, outcome: expected } = before === undefined || packing === undefined ? modelResult : packedOutcome(m.state, modelResult, before, packing, actual);
    recordOutcome(this.coverage, expected, state, step);
    if (expected !== modelResult.outcome) recordPackedOverflow(this.coverage);
    recordL1Corner(this.coverage, this.l1, m.state, step, expected, state);
    compareOutcomes(step, expected, actual);
    m.state = state;
    this.sample = undefined;
    const env = this.env(m);
    for (const check of this.checks) await check.afterOp?.(env, step, expected);
    this.noteHeader();
  }

  /** End-of-sequence clauses; the model is final. */
  async finish(m: ModelBox): Promise<void> {
    // every property ends with the whole disk read or compared
    recordChainRead(this.coverage, m.state, 0, m.state.options.virtualSize);
    this.sample = undefined;
    const env = this.env(m);
    for (const check of this.checks) await check.atEnd?.(env);
    this.sample ??= makeSample(await this.driver.imageBytes());
    this.noteHeader();
  }

  /**
   * Records the first header (growths are counted between consecutive samples).
   * Yields to the event loop first: an in-memory engine never waits on real
   * I/O, so back-to-back sequences would otherwise hold the loop for a whole
   * run and starve timers and RPC (vitest's worker calls time out after 60 s).
   */
  async start(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    const bytes = await this.driver.imageBytes();
    // coverage only: an image the decoder cannot read (extended L2 entries, made by QEMU) has no growths counted
    if (this.options.extendedL2 !== true) this.lastHeader = headerOf(decodeImage(bufferReader(bytes)));
  }

  private async compareRead(m: ModelBox, s: ReadStep): Promise<void> {
    const length = Math.min(s.length, m.state.options.virtualSize - s.offset);
    if (length <= 0) return;
    const expected = read(m.state, s.offset, length);
    const actual = await readGuest(this.driver, s.offset, length, 'read', formatStep(s), m.state.options.virtualSize);
    const at = firstDifference(expected, actual);
    if (at >= 0) {
      throw new PropertyViolation(
        'read',
        `${formatStep(s)}: guest offset 0x${(s.offset + at).toString(16)} reads [${hexPreview(actual.subarray(at))}], the model expects [${hexPreview(expected.subarray(at))}]`,
      );
    }
  }

  private env(m: ModelBox): CheckEnv {
    return {
      driver: this.driver,
      options: this.options,
      state: m.state,
      scratch: this.scratch,
      image: async () => {
        this.sample ??= makeSample(await this.driver.imageBytes());
        return this.sample;
      },
    };
  }

  /** Counts L1 / refcount-table growths from whatever image a check sampled. */
  private noteHeader(): void {
    if (this.sample === undefined) return;
    let decoded: DecodedImage;
    try {
      decoded = this.sample.decoded();
    } catch {
      return; // coverage only: the structure check reports undecodable images
    }
    const header = headerOf(decoded);
    if (this.lastHeader !== undefined) recordHeaderChange(this.coverage, this.lastHeader, header);
    this.lastHeader = header;
    recordCompressedLayout(this.coverage, decoded);
  }
}

function headerOf(decoded: DecodedImage): HeaderSample {
  const h = decoded.header;
  return { l1Size: h.l1Size, refcountTableClusters: h.refcountTableClusters, refcountTableOffset: Number(h.refcountTableOffset) };
}

function makeSample(bytes: Uint8Array): ImageSample {
  let decoded: DecodedImage | undefined;
  let report: CheckReport | undefined;
  return {
    bytes,
    report() {
      report ??= checkImage(bufferReader(bytes));
      return report;
    },
    decoded() {
      if (decoded === undefined) {
        try {
          decoded = decodeImage(bufferReader(bytes));
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new PropertyViolation('structure', `the image cannot be decoded: ${message}`, { cause: error });
        }
      }
      return decoded;
    },
  };
}

/**
 * A snapshot create or revert the model lets succeed, though its walk reaches
 * compressed streams: when the implementation refused it with refcount-overflow,
 * the refusal is right exactly when the image before the op, as it is packed,
 * overflows (model/packed-overflow.ts); the model then stays where it was. Any
 * other answer is held to the model's.
 */
function packedOutcome(
  before: ModelState,
  modelResult: { readonly state: ModelState; readonly outcome: Outcome },
  imageBefore: Uint8Array,
  packing: { readonly snapshot?: number },
  actual: Outcome,
): { readonly state: ModelState; readonly outcome: Outcome } {
  if (actual.ok || actual.error !== 'refcount-overflow') return modelResult;
  let image: DecodedImage;
  try {
    image = decodeImage(bufferReader(imageBefore));
  } catch {
    return modelResult; // the structure check reports an image that cannot be decoded
  }
  const l1 = packing.snapshot === undefined ? image.active : image.snapshots[packing.snapshot]?.l1;
  const cluster = l1 === undefined ? undefined : packedOverflowCluster(image, l1);
  if (cluster === undefined) return modelResult;
  const message = `host cluster ${cluster} holds several compressed streams: one more walk would push its refcount past 2^${before.options.refcountBits} - 1`;
  return { state: before, outcome: { ok: false, error: 'refcount-overflow', message } };
}

export function compareOutcomes(op: Op, expected: Outcome, actual: Outcome): void {
  const show = (o: Outcome) => (o.ok ? 'ok' : `${o.error} (${o.message})`);
  const same = expected.ok ? actual.ok : !actual.ok && actual.error === expected.error;
  if (!same) {
    throw new PropertyViolation('outcome', `${formatStep(op)}: the implementation answered ${show(actual)}, the model expects ${show(expected)}`);
  }
}
