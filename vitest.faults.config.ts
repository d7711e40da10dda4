import { defineConfig } from "vitest/config";

/**
 * The fault-injection suite (`npm run test:faults`): crashes, pauses, partitions, full disks,
 * corruption and hostile input, each scenario many times. Files run one at a time (they start
 * clusters and load the machine); LITEFS_FAULT_REPORT collects the report lines (JSON).
 */
export default defineConfig({
  test: {
    include: ["test/faults/**/*.faults.test.ts"],
    testTimeout: 30 * 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ["test/support/global-setup.ts"],
    // s3rver (the S3 test server, run in the test workers) signs list continuation tokens with
    // DES, which Node's OpenSSL 3 only has in its legacy provider: without it, every listing of
    // more than 1,000 objects answers 500 InternalError.
    execArgv: ["--openssl-legacy-provider"],
  },
});
