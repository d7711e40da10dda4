import { afterEach, describe, expect, it } from "vitest";
import { consul, consulNode } from "../support/consul-nodes.js";
import { info, isPrimary } from "../support/roles.js";
import { sqlite3, sqlite3Raw } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

describe("a node that has just mounted", () => {
  it("holds a write open until the lease loop has decided its role: a node about to be primary creates the first database", async () => {
    const double = await consul(cleanups);
    // Each lease request takes 1.5 s: the node mounts long before it knows it is the primary.
    double.latencyMs = 1_500;
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    expect((await info(a)).role).toBe("replica");
    // Before the fix this failed at once with "unable to open database file" (the flake of the
    // fault suite's fresh clusters, where the window was the static lease's cluster ID write).
    const r = await sqlite3Raw(a.db("first.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    expect(r.code, `${r.stderr}\n${a.logs.slice(-3000)}`).toBe(0);
    expect(await isPrimary(a)).toBe(true);
    expect(await sqlite3(a.db("first.db"), "SELECT count(*) FROM t;")).toBe("1");
  });

  it("still refuses a write open once it has decided it is a replica", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    const b = await consulNode(cleanups, double, "node-b", { candidate: false });
    await b.start();
    const r = await sqlite3Raw(b.db("x.db"), "CREATE TABLE t (v);");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unable to open database file|readonly/);
  });
});
