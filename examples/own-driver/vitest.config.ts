import { defineConfig } from 'vitest/config';

// Sequences run against real files and, with qemuJudges, QEMU: no timing in any verdict, room for a loaded machine.
export default defineConfig({ test: { include: ['test/**/*.test.ts'], testTimeout: 120_000 } });
