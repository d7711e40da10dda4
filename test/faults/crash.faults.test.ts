import { afterEach, describe, it } from "vitest";
import { runCrashScenario, type CrashTarget } from "./crash-scenarios.js";

/** kill -9 at random moments under a ledger load: LITEFS_FAULT_ITERATIONS (default 50) per scenario. */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const ITERATIONS = Number(process.env.LITEFS_FAULT_ITERATIONS ?? 50);
const TARGETS: CrashTarget[] = ["primary", "replica", "both", "mount agent"];

describe("kill -9 under a ledger load loses no acknowledged transfer", () => {
  for (const target of TARGETS) {
    for (const journalMode of ["delete", "wal"] as const) {
      it(`${target}, ${journalMode}: ${ITERATIONS} kills`, async () => {
        await runCrashScenario({ target, journalMode, iterations: ITERATIONS, cleanups });
      }, 30 * 60_000);
    }
  }
});
