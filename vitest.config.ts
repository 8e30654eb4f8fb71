import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Integration tests start daemons and write images; two cores: no more than two at once.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
    passWithNoTests: false,
  },
});
