import * as fsp from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { LitefsNode, freePort, sleep, waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

async function startCluster(label: string, replicas: number, opts: Parameters<typeof Cluster.start>[2] = {}): Promise<Cluster> {
  const c = await Cluster.start(label, replicas, opts);
  cleanups.push(() => c.cleanup());
  return c;
}

/** A replica that reaches the primary through a fault-injecting proxy. */
async function replicaBehindProxy(cluster: Cluster, label: string): Promise<{ replica: LitefsNode; proxy: FaultProxy }> {
  const proxy = await FaultProxy.start(cluster.primary.config.httpPort!);
  cleanups.push(() => proxy.close());
  const replica = await LitefsNode.create(label, { candidate: false, httpPort: await freePort(), hostname: label, primaryUrl: proxy.url });
  cleanups.push(() => replica.cleanup());
  return { replica, proxy };
}

async function writeRows(node: LitefsNode, name: string, from: number, count: number, size = 3000): Promise<void> {
  for (let i = from; i < from + count; i++) await sqlite3(node.db(name), `INSERT INTO t VALUES (${i}, randomblob(${size}));`);
}

describe("catching up", () => {
  it("a replica that joins after retention removed old files gets a snapshot", async () => {
    const cluster = await startCluster("late", 0, { primary: { retention: "500ms", retentionMonitorInterval: "100ms" } });
    const name = "late.db";
    await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await writeRows(cluster.primary, name, 1, 10);
    await waitFor(async () => (await cluster.primary.ltxFiles(name)).length === 1, 10_000, "retention to leave one file");
    const late = await LitefsNode.create("late-r", { candidate: false, httpPort: await freePort(), hostname: "late", primaryUrl: cluster.primary.config.primaryUrl });
    cleanups.push(() => late.cleanup());
    await late.start();
    const c = new Cluster(cluster.primary, [late]);
    await c.waitForConvergence(name);
    await c.expectIdenticalBytes(name);
    expect(cluster.primary.logs).toMatch(/sending snapshot.*late\.db|db=late\.db.*sending snapshot|"db":"late.db".*snapshot/s);
    // The snapshot replaced history: the replica holds one file, covering TXIDs 1..N.
    const files = await late.ltxFiles(name);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^0000000000000001-/);
  });

  it("a replica restarted mid-stream resumes incrementally", async () => {
    const cluster = await startCluster("resume", 1);
    const [replica] = cluster.replicas;
    const name = "resume.db";
    await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await writeRows(cluster.primary, name, 1, 5);
    await cluster.waitForConvergence(name);
    await replica.stop();
    await writeRows(cluster.primary, name, 6, 10);
    await replica.start();
    await cluster.waitForConvergence(name);
    await cluster.expectIdenticalBytes(name);
    expect(cluster.primary.logs).not.toMatch(/sending snapshot/);
    // Every transaction arrived as its own file.
    expect((await replica.ltxFiles(name)).length).toBe(16);
  });

  it("a replica whose data diverged (same TXID, other checksum) is re-snapshotted and ends identical", async () => {
    const cluster = await startCluster("diverge", 1);
    const [replica] = cluster.replicas;
    const name = "diverge.db";
    await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await writeRows(cluster.primary, name, 1, 3);
    await cluster.waitForConvergence(name);

    // The replica runs alone as a primary for a moment and commits its own TXID 5.
    await replica.stop();
    replica.config.candidate = true;
    await replica.writeConfig();
    await replica.start();
    await sqlite3(replica.db(name), "INSERT INTO t VALUES (100, 'written on the wrong node');");
    await replica.stop();
    // Meanwhile the primary commits a different TXID 5.
    await writeRows(cluster.primary, name, 4, 1);
    const replicaPos = Position.parse((await fsp.readdir(replica.ltxDir(name))).length ? await lastPos(replica, name) : "0/0");
    const primaryPos = Position.parse(await cluster.primary.pos(name));
    expect(replicaPos.txid).toBe(primaryPos.txid);
    expect(replicaPos.postApplyChecksum).not.toBe(primaryPos.postApplyChecksum);

    replica.config.candidate = false;
    await replica.writeConfig();
    await replica.start();
    await cluster.waitForConvergence(name);
    await cluster.expectIdenticalBytes(name);
    expect(await sqlite3(replica.db(name), "SELECT count(*) FROM t WHERE id = 100;")).toBe("0");
    expect(cluster.primary.logs).toMatch(/sending snapshot/);
  });
});

/** The position recorded by a stopped node's newest LTX file (its -pos when it runs). */
async function lastPos(node: LitefsNode, name: string): Promise<string> {
  const { decodeLtx } = await import("../../src/ltx/index.js");
  const files = await node.ltxFiles(name);
  const ltx = decodeLtx(await fsp.readFile(`${node.ltxDir(name)}/${files.at(-1)}`));
  return new Position(ltx.header.maxTxid, ltx.trailer.postApplyChecksum).toString();
}

describe("faults on the wire", () => {
  for (const offset of [400, 2500, 9000, 20000]) {
    it(`a corrupted byte at offset ${offset} of the stream: the replica keeps its last good state and converges`, async () => {
      const cluster = await startCluster(`corrupt${offset}`, 0);
      const { replica, proxy } = await replicaBehindProxy(cluster, `corrupt${offset}-r`);
      const name = "wire.db";
      await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
      await writeRows(cluster.primary, name, 1, 12);
      proxy.inject({ corruptAt: offset });
      await replica.start();
      const c = new Cluster(cluster.primary, [replica]);
      await c.waitForConvergence(name);
      await c.expectIdenticalBytes(name);
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
      expect(replica.logs).toMatch(/reconnecting/);
      expect(await sqlite3(replica.db(name), "PRAGMA integrity_check;")).toBe("ok");
    });
  }

  for (const offset of [150, 3000, 15000]) {
    it(`a stream cut after ${offset} bytes: the replica reconnects and converges`, async () => {
      const cluster = await startCluster(`cut${offset}`, 0);
      const { replica, proxy } = await replicaBehindProxy(cluster, `cut${offset}-r`);
      const name = "cut.db";
      await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
      await writeRows(cluster.primary, name, 1, 12);
      proxy.inject({ cutAt: offset });
      await replica.start();
      const c = new Cluster(cluster.primary, [replica]);
      await c.waitForConvergence(name);
      await c.expectIdenticalBytes(name);
      expect(proxy.connections).toBeGreaterThanOrEqual(2);
    });
  }

  it("a primary killed in the middle of a file: the replica keeps its last good state, then converges", async () => {
    const cluster = await startCluster("killmid", 0);
    const { replica, proxy } = await replicaBehindProxy(cluster, "killmid-r");
    const name = "killmid.db";
    await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await writeRows(cluster.primary, name, 1, 3);
    await replica.start();
    const c = new Cluster(cluster.primary, [replica]);
    const good = await c.waitForConvergence(name);

    // A 4 MiB transaction; its file stalls half-way through on the wire, then the primary dies.
    proxy.inject({ stallAt: 2 << 20 });
    proxy.dropAll();
    await sqlite3(cluster.primary.db(name), "INSERT INTO t SELECT 1000 + value, randomblob(4096) FROM generate_series(1, 1000);");
    await sleep(1500);
    await cluster.primary.kill9();
    await sleep(500);
    expect(await replica.pos(name)).toBe(good);
    expect(await sqlite3(replica.db(name), "PRAGMA integrity_check;")).toBe("ok");
    expect(await sqlite3(replica.db(name), "SELECT count(*) FROM t;")).toBe("3");

    await cluster.primary.start();
    await c.waitForConvergence(name);
    await c.expectIdenticalBytes(name);
    expect(await sqlite3(replica.db(name), "SELECT count(*) FROM t;")).toBe("1003");
  });
});
