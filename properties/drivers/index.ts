// The built-in implementations by `--impl` name (a `cmd:` one is properties/drivers/command.ts).
import type { BuiltinImplName, DriverFactory } from '../driver.js';
import { createCanaryDriver } from './canary.js';
import { createEngineDriver } from './engine.js';
import { createQemuDriver } from './qemu.js';

export const driverFactories: Readonly<Record<BuiltinImplName, DriverFactory>> = {
  ts: createEngineDriver,
  qemu: createQemuDriver,
  canary: createCanaryDriver,
};
