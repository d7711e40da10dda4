import { afterEach, describe, it } from "vitest";
import { runCrashScenario, type CrashTarget } from "./crash-scenarios.js";

/**
 * The fast subset of the crash scenarios (npm test): a few kill -9 per target, both journal modes.
 * The fault suite runs the same scenarios 50 times each (crash.faults.test.ts).
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const QUICK: Array<[CrashTarget, "delete" | "wal"]> = [
  ["primary", "delete"],
  ["primary", "wal"],
  ["replica", "wal"],
  ["mount agent", "delete"],
];

describe("kill -9 under a ledger load loses no acknowledged transfer (quick)", () => {
  for (const [target, journalMode] of QUICK) {
    it(`${target}, ${journalMode}`, async () => {
      await runCrashScenario({ target, journalMode, iterations: 2, cleanups });
    });
  }
});
