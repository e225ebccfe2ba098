import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          // Each file drives whole compose stacks: one at a time on a 2-core machine.
          fileParallelism: false,
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'fault',
          include: ['test/fault/**/*.test.ts'],
          globalSetup: ['test/fault/global-setup.ts'],
          environment: 'node',
          // Slow tier: whole stacks under load, faults injected one after another.
          fileParallelism: false,
          sequence: { concurrent: false },
          env: { TESTCONTAINERS_RYUK_DISABLED: 'true' },
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
