// The canary: a deliberately broken engine that every run of the suite must
// catch (style.md §14). It silently drops every third guest write while
// reporting success — the kind of bug a cache that forgets a dirty entry has.
// If a gate run ever passes with --impl canary, the harness itself is dead.
import type { ImageOptions, Op, Outcome } from '../../model/index.js';
import { okOutcome, type EngineReports, type ImageDriver, type ReportingDriver } from '../driver.js';
import { createEngineDriver } from './engine.js';

/** Which writes are dropped: the 3rd, 6th, 9th … of the image's lifetime. */
export const canaryDropEvery = 3;

class CanaryDriver implements ImageDriver {
  readonly name = 'canary (ts engine dropping every 3rd write)';
  private writes = 0;

  constructor(private readonly inner: ReportingDriver) {}

  apply(op: Op): Promise<Outcome> {
    if (op.kind === 'write') {
      this.writes += 1;
      if (this.writes % canaryDropEvery === 0) return Promise.resolve(okOutcome);
    }
    return this.inner.apply(op);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.inner.read(offset, length);
  }

  imageBytes(): Promise<Uint8Array> {
    return this.inner.imageBytes();
  }

  fileLength(): Promise<number> {
    return this.inner.fileLength();
  }

  reports(): Promise<EngineReports> {
    return this.inner.reports();
  }

  writeTo(path: string): Promise<void> {
    return this.inner.writeTo(path);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export async function createCanaryDriver(options: ImageOptions): Promise<ImageDriver> {
  return new CanaryDriver(await createEngineDriver(options));
}
