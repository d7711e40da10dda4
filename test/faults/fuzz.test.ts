import { fuzzSuite } from "./fuzz-suite.js";

// The fast subset (npm test); npm run test:faults runs the same properties with thousands of cases.
fuzzSuite(Number(process.env.LITEFS_FUZZ_RUNS ?? 150));
