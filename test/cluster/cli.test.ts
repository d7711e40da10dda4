import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { consul, consulNode, primaryAndCandidate } from "../support/consul-nodes.js";
import { CLI, LitefsNode, waitFor } from "../support/node-process.js";
import { isPrimary, waitForPrimary } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

/** `litefs VERB -config <node's config> ARGS...` (flags before any `--`). */
function litefs(node: LitefsNode, verb: string, ...args: string[]) {
  return run(process.execPath, [CLI, verb, "-config", node.configPath, ...args]);
}

describe("the admin CLI against running nodes", () => {
  it("status, promote and handoff", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    await sqlite3(a.db("s.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await new Cluster(a, [b]).waitForConvergence("s.db");

    const status = await litefs(b, "status");
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/role:\s+replica/);
    expect(status.stdout).toMatch(/primary:\s+node-a/);
    expect(status.stdout).toMatch(/s\.db\s+0000000000000002\/[0-9a-f]{16}/);

    const promote = await litefs(b, "promote");
    expect(promote.code, promote.stderr).toBe(0);
    expect(promote.stdout).toMatch(/now the primary/);
    expect(await isPrimary(b)).toBe(true);

    await waitFor(async () => (await litefs(a, "status")).stdout.includes("primary:  node-b"), 10_000, "node-a to follow node-b");
    const handoff = await litefs(b, "handoff", "node-a");
    expect(handoff.code, handoff.stderr).toBe(0);
    await waitForPrimary([a], 10_000);

    const bad = await litefs(a, "handoff", "nobody");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no connected replica with node ID or hostname "nobody"/);
  });

  it("lease.promote makes a candidate take over once it has caught up", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    await waitForPrimary([a]);
    await sqlite3(a.db("p.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    const b = await consulNode(cleanups, double, "node-b", { promote: true });
    await b.start();
    await waitForPrimary([b], 20_000);
    expect(await sqlite3(b.db("p.db"), "SELECT count(*) FROM t;")).toBe("1");
  });

  it("run -if-candidate skips non-candidates; run -promote runs on a freshly promoted primary", async () => {
    const { double, a, b } = await primaryAndCandidate(cleanups);
    const c = await consulNode(cleanups, double, "node-c", { candidate: false });
    await c.start();
    await sqlite3(a.db("m.db"), "CREATE TABLE t (v);");
    await new Cluster(a, [b, c]).waitForConvergence("m.db");

    const skipped = await litefs(c, "run", "-if-candidate", "--", "sqlite3", c.db("m.db"), "INSERT INTO t VALUES ('from c');");
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stderr).toMatch(/not a lease candidate: skipping/);

    const migrated = await litefs(b, "run", "-promote", "-if-candidate", "--", "sqlite3", b.db("m.db"), "INSERT INTO t VALUES ('migration');");
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(await isPrimary(b)).toBe(true);
    expect(await sqlite3(b.db("m.db"), "SELECT group_concat(v) FROM t;")).toBe("migration");

    const failing = await litefs(b, "run", "--", "sh", "-c", "exit 5");
    expect(failing.code).toBe(5);
  });
});
