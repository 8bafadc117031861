// The implementations by `--impl` name.
import type { DriverFactory, ImplName } from '../driver.js';
import { createCanaryDriver } from './canary.js';
import { createEngineDriver } from './engine.js';
import { createQemuDriver } from './qemu.js';

export const driverFactories: Readonly<Record<ImplName, DriverFactory>> = {
  ts: createEngineDriver,
  qemu: createQemuDriver,
  canary: createCanaryDriver,
};
