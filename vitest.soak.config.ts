import { defineConfig } from "vitest/config";

/** Long soak and chaos runs: `npm run test:soak` (not part of `npm test`). */
export default defineConfig({
  test: {
    include: ["test/**/*.soak.test.ts"],
    testTimeout: 60 * 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ["test/support/global-setup.ts"],
    // s3rver (the S3 test server, run in the test workers) signs list continuation tokens with
    // DES, which Node's OpenSSL 3 only has in its legacy provider: without it, every listing of
    // more than 1,000 objects answers 500 InternalError.
    execArgv: ["--openssl-legacy-provider"],
  },
});
