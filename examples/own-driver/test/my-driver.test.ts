// The project's own suite: fast-check draws operation sequences (with their
// image options) from qcow2-verify's generators, and checkSequence runs each
// against the driver beside the reference model, comparing every outcome and
// every read, plus the property's own checks. A failure is shrunk by
// fast-check and printed as qemu-io commands.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSequence, sequence, type DriverFactory } from 'qcow2-verify/properties';
import { createMyDriver } from '../my-driver.js';

// One seed for the suite, from the environment, so a failure in CI replays exactly.
const seed = Number(process.env.QCOW2_SEED ?? '42');
const numRuns = Number(process.env.QCOW2_RUNS ?? '10');

describe('my qcow2 driver', () => {
  it('reads and answers every operation as the model says', async () => {
    await fc.assert(
      fc.asyncProperty(sequence({ commandsCountMax: 30 }), (seq) => checkSequence(createMyDriver, seq)),
      { seed, numRuns },
    );
  });

  it('leaves an image equivalent to the model after every operation (structure)', async () => {
    await fc.assert(
      fc.asyncProperty(sequence({ commandsCountMax: 20 }), (seq) => checkSequence(createMyDriver, seq, { property: 'structure' })),
      { seed, numRuns },
    );
  });

  it('catches a driver that loses every third write (the suite is alive)', async () => {
    const dropsWrites: DriverFactory = async (options) => {
      const driver = await createMyDriver(options);
      let writes = 0;
      return {
        name: `${driver.name}, losing every third write`,
        apply: (op) => (op.kind === 'write' && ++writes % 3 === 0 ? Promise.resolve({ ok: true }) : driver.apply(op)),
        read: (offset, length) => driver.read(offset, length),
        imageBytes: () => driver.imageBytes(),
        fileLength: () => driver.fileLength(),
        writeTo: (path) => driver.writeTo(path),
        close: () => driver.close(),
      };
    };
    const run = fc.assert(
      fc.asyncProperty(sequence({ commandsCountMax: 12 }), (seq) => checkSequence(dropsWrites, seq)),
      { seed, numRuns: 50 },
    );
    await expect(run).rejects.toThrow(/Counterexample: .*write -/s);
  });
});
