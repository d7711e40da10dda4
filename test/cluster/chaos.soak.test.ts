import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { startConsulDouble } from "../support/consul-double.js";
import { LitefsNode, freePort, sleep } from "../support/node-process.js";
import { waitForPrimary } from "../support/roles.js";
import { sqlite3, sqlite3Raw } from "../support/sqlite-clients.js";

/**
 * Chaos soak: three Consul candidates under a steady write load; every round kills the primary
 * with SIGKILL or stops it cleanly, lets the cluster elect another, and brings the node back.
 * Rounds: LITEFS_SOAK_ROUNDS (default 30).
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

describe("chaos soak", () => {
  it("survives repeated primary failures under load and ends converged", async () => {
    const rounds = Number(process.env.LITEFS_SOAK_ROUNDS ?? 30);
    const double = await startConsulDouble();
    cleanups.push(() => double.close());
    const nodes: LitefsNode[] = [];
    for (const name of ["soak-a", "soak-b", "soak-c"]) {
      const n = await LitefsNode.create(name, { hostname: name, httpPort: await freePort(), consulUrl: double.url, candidate: true });
      cleanups.push(() => n.cleanup());
      nodes.push(n);
      await n.start();
    }
    const name = "soak.db";
    let primary = await waitForPrimary(nodes);
    await sqlite3(primary.db(name), "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    let nextId = 1;
    for (let round = 0; round < rounds; round++) {
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        const r = await sqlite3Raw(primary.db(name), `.timeout 2000\nINSERT INTO t VALUES (${nextId}, randomblob(800));`);
        if (r.code === 0) nextId++;
      }
      if (round % 2 === 0) {
        await primary.kill9();
        double.advance(11_000);
      } else {
        await primary.stop();
      }
      const old = primary;
      primary = await waitForPrimary(nodes.filter((n) => n !== old), 30_000);
      await old.start();
      await sleep(200);
    }
    const replicas = nodes.filter((n) => n !== primary);
    const cluster = new Cluster(primary, replicas);
    await cluster.waitForConvergence(name, 120_000);
    await cluster.expectIdenticalBytes(name);
    for (const n of nodes) expect(await sqlite3(n.db(name), "PRAGMA integrity_check;")).toBe("ok");
  });
});
