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
    // s3rver (the S3 test server, run in the test workers) signs list continuation tokens with
    // DES, which Node's OpenSSL 3 only has in its legacy provider: without it, every listing of
    // more than 1,000 objects answers 500 InternalError.
    execArgv: ["--openssl-legacy-provider"],
  },
});
