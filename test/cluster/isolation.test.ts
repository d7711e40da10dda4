import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { ROOT } from "../support/node-process.js";
import { run } from "../support/sqlite-clients.js";
import * as fsp from "node:fs/promises";

let cluster: Cluster;

beforeAll(async () => {
  cluster = await Cluster.start("isolation", 2);
});

afterAll(async () => {
  await cluster?.cleanup();
});

const program = (name: string) => path.join(ROOT, "test/support/programs", name);

describe("replica readers never see a torn transaction", () => {
  for (const mode of ["delete", "wal"]) {
    // Bounded by the work, not the clock: on a busy machine 3000 DELETE-mode commits take minutes,
    // and the readers run until the stop file appears (their own limit is only a backstop).
    it(`thousands of transfers on the primary keep the total constant on every replica (${mode})`, { timeout: 600_000 }, async () => {
      const name = `bank-${mode}.db`;
      const accounts = 50;
      // Create the accounts first so readers have something to open.
      const init = await run(process.execPath, [program("bank-writer.mjs"), cluster.primary.db(name), mode, "0", String(accounts)]);
      expect(init.code, init.stderr).toBe(0);
      await cluster.waitForConvergence(name);

      const stopFile = path.join(cluster.primary.dir, `stop-${mode}`);
      const readers = cluster.replicas.flatMap((r) =>
        ["long", "new"].map((style) =>
          run(process.execPath, [program("bank-reader.mjs"), r.db(name), style, "540000", String(accounts * 1000), stopFile], { timeoutMs: 570_000 }),
        ),
      );
      const transfers = 3000;
      const writer = await run(process.execPath, [program("bank-writer.mjs"), cluster.primary.db(name), mode, String(transfers), String(accounts)], {
        timeoutMs: 480_000,
      });
      expect(writer.code, writer.stderr).toBe(0);
      await cluster.waitForConvergence(name, 60_000);
      // Give the readers a moment on the final state, then stop them.
      await new Promise((r) => setTimeout(r, 500));
      await fsp.writeFile(stopFile, "");
      const results = (await Promise.all(readers)).map((r) => {
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout.trim()) as { checks: number; badCount: number; bad: number[]; errors: string[]; maxTransfers: number; increases: number };
      });
      for (const res of results) {
        expect(res.errors).toEqual([]);
        expect(res.badCount, `wrong totals seen: ${res.bad.join(", ")}`).toBe(0);
        expect(res.checks).toBeGreaterThan(50);
        // Every reader, including the long-lived connections, saw the final state.
        expect(res.maxTransfers).toBe(transfers);
        expect(res.increases).toBeGreaterThan(5);
      }
      await cluster.expectIdenticalBytes(name);
    });
  }
});
