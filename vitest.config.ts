import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'training-container/test/**/*.test.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    // Model and CDK synth tests are CPU-heavy; CI has 2 cores.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
