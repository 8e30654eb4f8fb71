import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    setupFiles: ['tests/support/failure-logs.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // One test file at a time: the integration tests drive real tools, FUSE mounts, loop devices and
    // a QEMU guest, and two cores do not carry several of them at once. (restore asking for a volume
    // 3, once blamed on parallel files, was a dump bug that depends on the tree's size: see
    // tests/integration/rmt-dump.test.ts.) Tests inside a file still run in order.
    fileParallelism: false,
    reporters: ['default'],
    passWithNoTests: false,
  },
});
