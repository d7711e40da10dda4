import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { consul, consulNode, primaryAndCandidate } from "../support/consul-nodes.js";
import { LitefsNode, ROOT, freePort, sleep, waitFor } from "../support/node-process.js";
import { info, isPrimary, post, waitForPrimary } from "../support/roles.js";
import { sqlite3, sqlite3Raw } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

/** The last failure of a write per node: on a failure, the test says why writes stopped. */
const lastError = new Map<string, string>();
/** Keeps inserting into `name` on whichever node is primary; records every acknowledged id. */
function writeLoad(nodes: LitefsNode[], name: string): { acked: number[]; stop: () => Promise<void> } {
  const acked: number[] = [];
  let stopped = false;
  const loop = (async () => {
    let id = 1;
    while (!stopped) {
      for (const n of nodes) {
        if (stopped || !n.proc) continue;
        const r = await sqlite3Raw(n.db(name), `.timeout 2000\nINSERT INTO t VALUES (${id}, randomblob(500));`, { timeoutMs: 10_000 }).catch((err: Error) => {
          lastError.set(n.config.hostname ?? "", err.message.slice(0, 300));
          return null;
        });
        if (r?.code === 0) {
          acked.push(id);
          id++;
        } else if (r && /UNIQUE constraint failed/.test(r.stderr)) {
          // An earlier try of this id committed (on the killed primary, replicated) though its
          // client never heard back: not acknowledged, but there; go on with the next id.
          id++;
        } else if (r) lastError.set(n.config.hostname ?? "", r.stderr.trim());
      }
      await sleep(20);
    }
  })();
  return {
    acked,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function converge(primary: LitefsNode, replicas: LitefsNode[], name: string): Promise<void> {
  const c = new Cluster(primary, replicas);
  await c.waitForConvergence(name, 60_000);
  await c.expectIdenticalBytes(name);
  for (const n of [primary, ...replicas]) expect(await sqlite3(n.db(name), "PRAGMA integrity_check;")).toBe("ok");
}

describe("failover with a Consul lease", () => {
  it("kill -9 of the primary under load: a candidate takes over after TTL + lock-delay, the old node rejoins and converges", async () => {
    const { double, a, b } = await primaryAndCandidate(cleanups);
    const c = await consulNode(cleanups, double, "node-c", { candidate: false });
    await c.start();
    const name = "failover.db";
    await sqlite3(a.db(name), "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await new Cluster(a, [b, c]).waitForConvergence(name);

    const load = writeLoad([a, b, c], name);
    await sleep(1000);
    await a.kill9();
    // The session must run out in Consul (TTL) and the lock-delay pass before anyone acquires.
    double.advance(10_000);
    await sleep(300);
    expect(await isPrimary(b)).toBe(false);
    double.advance(1_000);
    const newPrimary = await waitForPrimary([b], 20_000);
    expect(newPrimary).toBe(b);
    await waitFor(() => load.acked.length > 0, 5000, "writes");
    const before = load.acked.length;
    await waitFor(() => load.acked.length > before + 5, 20_000, "writes to resume on the new primary").catch((err: Error) => {
      throw new Error(`${err.message}\n--- errors: ${JSON.stringify([...lastError])}\n--- node-b:\n${b.logs.slice(-4000)}\n--- node-c:\n${c.logs.slice(-2000)}`);
    });
    await load.stop();

    await a.start();
    await converge(b, [a, c], name);
    const present = new Set((await sqlite3(b.db(name), "SELECT id FROM t;")).split("\n").map(Number));
    // Writes acknowledged by the new primary are all there (the old primary's last ones may be lost: async replication).
    const afterFailover = load.acked.slice(before);
    expect(afterFailover.filter((id) => !present.has(id))).toEqual([]);
    expect(c.logs).not.toMatch(/acquired the primary lease/);
  });

  it("a primary that stops cleanly hands its lease to a connected candidate", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    await sqlite3(a.db("h.db"), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB); INSERT INTO t VALUES (1, 'x');");
    await new Cluster(a, [b]).waitForConvergence("h.db");
    const started = Date.now();
    await a.stop().catch((err) => {
      throw new Error(`${err.message}\n--- node-a:\n${a.logs.slice(-5000)}`);
    });
    await waitForPrimary([b], 10_000);
    const tookMs = Date.now() - started;
    console.log(`clean shutdown handover took ${tookMs} ms`);
    expect(a.logs).toMatch(/handed the lease over before shutting down/);
    expect(b.logs).toMatch(/taking over the lease handed to this node/);
    await sqlite3(b.db("h.db"), "INSERT INTO t VALUES (2, 'y');");
    expect(await sqlite3(b.db("h.db"), "SELECT count(*) FROM t;")).toBe("2");
  });

  for (const mode of ["delete", "wal"]) {
  it(`20 handoffs back and forth under load keep every node intact and converged (${mode})`, async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    const name = "pingpong.db";
    await sqlite3(a.db(name), `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);`);
    await new Cluster(a, [b]).waitForConvergence(name);
    const load = writeLoad([a, b], name);
    let primary = a;
    for (let i = 0; i < 20; i++) {
      const target = primary === a ? b : a;
      // A handoff goes to a connected replica: wait until the old primary has rejoined.
      await waitFor(
        async () => ((await info(primary).catch(() => null))?.replicas ?? []).some((r) => r.connected && r.hostname === target.config.hostname),
        // Rejoining includes the demotion repair through the mount and a new stream: generous
        // on a loaded machine, and the logs say where it stopped if it never happens.
        30_000,
        "the replica to connect",
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- ${primary.config.hostname}:\n${primary.logs.slice(-4000)}\n--- ${target.config.hostname}:\n${target.logs.slice(-4000)}`);
      });
      const res = await post(primary, `/handoff?id=${target.config.hostname}`);
      expect(res.status, res.body).toBe(200);
      await waitForPrimary([target], 10_000).catch((err) => {
        throw new Error(`${err.message}\n--- ${primary.config.hostname}:\n${primary.logs.slice(-4000)}\n--- ${target.config.hostname}:\n${target.logs.slice(-4000)}`);
      });
      primary = target;
      // Under load, not beside it: the next handoff waits for a write the new primary acknowledged.
      const acked = load.acked.length;
      await waitFor(() => load.acked.length > acked + 1, 20_000, `writes acknowledged by ${target.config.hostname}`);
    }
    await load.stop();
    const replica = primary === a ? b : a;
    await converge(primary, [replica], name);
    const present = new Set((await sqlite3(primary.db(name), "SELECT id FROM t;")).split("\n").map(Number));
    // A handoff waits until the target has every commit: no acknowledged write is lost.
    expect(load.acked.filter((id) => !present.has(id))).toEqual([]);
    expect(load.acked.length).toBeGreaterThan(20);
  });
  }

  it("a non-candidate never becomes primary, and cannot be promoted", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    await waitForPrimary([a]);
    const c = await consulNode(cleanups, double, "node-c", { candidate: false });
    await c.start();
    const res = await post(c, "/promote");
    expect(res.status).toBe(400);
    expect(res.body).toMatch(/not a candidate/);
    await a.kill9();
    double.advance(12_000);
    await sleep(2500);
    expect(await isPrimary(c)).toBe(false);
    expect(c.logs).not.toMatch(/acquired the primary lease/);
    const r = await sqlite3Raw(c.db("x.db"), "CREATE TABLE t (v);");
    expect(r.code).not.toBe(0);
  });

  it("a node from another cluster never joins", async () => {
    const double = await consul(cleanups);
    const a = await consulNode(cleanups, double, "node-a");
    await a.start();
    await waitForPrimary([a]);
    await sqlite3(a.db("c.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    const stranger = await consulNode(cleanups, double, "stranger");
    await fsp.mkdir(stranger.dataDir, { recursive: true });
    await fsp.writeFile(path.join(stranger.dataDir, "clusterid"), "LFSC0123456789ABCDEF\n");
    await stranger.start();
    await waitFor(() => /belongs to cluster/.test(stranger.logs) || /belongs to cluster/.test(a.logs), 15_000, "the refusal");
    expect(await fsp.readdir(stranger.mnt)).not.toContain("c.db");
    // Even with no primary left, it does not take the cluster's lease.
    await a.kill9();
    double.advance(12_000);
    await sleep(2500);
    expect(await isPrimary(stranger)).toBe(false);
    expect(stranger.logs).toMatch(/refusing to become primary/);
  });

  it("a promoted candidate takes over from the primary (POST /promote, litefs promote)", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    await sqlite3(a.db("p.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await new Cluster(a, [b]).waitForConvergence("p.db");
    const res = await post(b, "/promote");
    expect(res.status, res.body).toBe(200);
    expect(await isPrimary(b)).toBe(true);
    expect(await isPrimary(a)).toBe(false);
    // The old primary follows the new one once its stream connects.
    await waitFor(async () => (await info(a)).primary === "node-b", 10_000, "node-a to follow node-b");
  });
});

describe("a deposed primary", () => {
  it("rolls back a transaction cut off by the handoff before it applies anything as a replica", async () => {
    const { a, b } = await primaryAndCandidate(cleanups);
    const name = "cutoff.db";
    await sqlite3(a.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB); INSERT INTO t VALUES (1, 'kept');");
    await new Cluster(a, [b]).waitForConvergence(name);

    // A write transaction on node-a has already overwritten pages of the database file...
    const { spawn } = await import("node:child_process");
    const holder = spawn(process.execPath, [path.join(ROOT, "test/support/programs/holder.mjs"), a.db(name)], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    holder.stdout.on("data", (d) => (out += d));
    await waitFor(() => out.includes("ready"), 20_000, "the transaction to spill pages");
    // ...when node-a hands its lease over: the transaction cannot commit any more.
    const res = await post(a, "/handoff?id=node-b");
    expect(res.status, res.body).toBe(200);
    await waitForPrimary([b], 10_000);
    holder.stdin.write("commit\n");
    await waitFor(() => /failed|committed/.test(out), 20_000, "the commit attempt");
    expect(out).toMatch(/failed/);

    await waitFor(() => /rolled back cut-off transactions/.test(a.logs), 30_000, "node-a to roll back the cut-off transaction");
    await sqlite3(b.db(name), "INSERT INTO t VALUES (2, 'after handoff');");
    await converge(b, [a], name);
    expect(await sqlite3(a.db(name), "SELECT count(*) FROM t;")).toBe("2");
  });

  it("whose last transactions never reached the new primary gets a snapshot, and the discarded TXIDs are logged", async () => {
    const double = await consul(cleanups);
    // node-a is reached through a proxy, so its stream to node-b can be cut.
    const aPort = await freePort();
    const proxy = await FaultProxy.start(aPort);
    cleanups.push(() => proxy.close());
    const a = await consulNode(cleanups, double, "node-a", { httpPort: aPort, advertiseUrl: proxy.url });
    await a.start();
    await waitForPrimary([a]);
    const b = await consulNode(cleanups, double, "node-b");
    await b.start();
    const name = "deposed.db";
    await sqlite3(a.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, origin TEXT);");
    for (let i = 1; i <= 3; i++) await sqlite3(a.db(name), `INSERT INTO t VALUES (${i}, 'a');`);
    await new Cluster(a, [b]).waitForConvergence(name);

    // Cut node-b off, let node-a commit alone, then kill it.
    await proxy.close();
    for (let i = 4; i <= 8; i++) await sqlite3(a.db(name), `INSERT INTO t VALUES (${i}, 'a only');`);
    const aPos = await a.pos(name);
    await a.kill9();
    double.advance(11_000);
    await waitForPrimary([b], 20_000);
    for (let i = 100; i < 103; i++) await sqlite3(b.db(name), `INSERT INTO t VALUES (${i}, 'b');`);

    // node-a comes back (directly reachable now) and rejoins as a replica.
    a.config.advertiseUrl = undefined;
    await a.writeConfig();
    await a.start();
    await converge(b, [a], name);
    expect(await sqlite3(a.db(name), "SELECT count(*) FROM t WHERE origin = 'a only';")).toBe("0");
    expect(await isPrimary(a)).toBe(false);
    expect(aPos).not.toBe(await a.pos(name));
    expect(b.logs).toMatch(/replica node-a diverged after TXID 4: its TXIDs 5\.\.9 of deposed\.db are discarded/);
  });
});

describe("when Consul or the network fails", () => {
  it("Consul unreachable past the TTL: the primary turns read-only before anyone can acquire; the cluster heals", async () => {
    const { double, a, b } = await primaryAndCandidate(cleanups);
    await sqlite3(a.db("u.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await new Cluster(a, [b]).waitForConvergence("u.db");

    const session = double.entry("litefs/test")?.session;
    expect(session).toBeTruthy();
    await double.pause("hang");
    await waitFor(() => /no longer the primary/.test(a.logs), 20_000, "the primary to step down");
    // It stepped down while Consul still held its session: nobody else could have acquired yet.
    expect(double.session(session!)).toBeDefined();
    const write = await sqlite3Raw(a.db("u.db"), "INSERT INTO t VALUES (2);");
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/readonly/);
    expect(await isPrimary(b)).toBe(false);

    await double.resume();
    const primary = await waitForPrimary([a, b], 30_000);
    const replica = primary === a ? b : a;
    await sqlite3(primary.db("u.db"), "INSERT INTO t VALUES (3);");
    await converge(primary, [replica], "u.db");
    expect(await sqlite3(replica.db("u.db"), "SELECT group_concat(v) FROM t;")).toBe("1,3");
  });
});
