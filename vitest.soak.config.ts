import { defineConfig } from "vitest/config";

/** Long soak and chaos runs: `npm run test:soak` (not part of `npm test`). */
export default defineConfig({
  test: {
    include: ["test/**/*.soak.test.ts"],
    testTimeout: 60 * 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ["test/support/global-setup.ts"],
  },
});
