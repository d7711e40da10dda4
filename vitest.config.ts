import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/**/*.soak.test.ts", "test/**/*.faults.test.ts", "node_modules/**"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // FUSE and cluster tests start real processes; two cores cannot run many at once.
    fileParallelism: true,
    maxWorkers: 2,
    globalSetup: ["test/support/global-setup.ts"],
  },
});
