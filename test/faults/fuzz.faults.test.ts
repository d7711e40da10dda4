import { fuzzSuite } from "./fuzz-suite.js";

// Thousands of generated cases per property (npm test runs the same with a few hundred).
fuzzSuite(Number(process.env.LITEFS_FUZZ_RUNS ?? 2000));
