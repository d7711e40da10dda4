import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

async function startCluster(label: string): Promise<Cluster> {
  // Debug logs: the replica reports each batch it applies.
  const c = await Cluster.start(label, 1, { replica: { extraYaml: "log:\n  debug: true" } });
  cleanups.push(() => c.cleanup());
  return c;
}

const txid = (pos: string | null) => (pos ? parseInt(pos.split("/")[0], 16) : 0);

/**
 * Thousands of autocommit transactions in one sqlite3 process: inserts of varied sizes, updates,
 * deletes, and VACUUMs that shrink the file (a batch holds files that cut the database and files
 * that grow it again).
 */
function workload(from: number, rounds: number): string {
  const sql: string[] = [];
  let id = from;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 90; i++, id++) sql.push(`INSERT INTO t VALUES (${id}, randomblob(${50 + ((id * 37) % 3000)}));`);
    sql.push(`UPDATE t SET b = randomblob(700) WHERE id % 7 = ${r % 7} AND id > ${id - 200};`);
    sql.push(`DELETE FROM t WHERE id % 5 = ${r % 5} AND id < ${id - 50};`);
    if (r % 4 === 3) sql.push("VACUUM;");
  }
  return sql.join("\n");
}

describe("catch-up in batches", () => {
  for (const mode of ["wal", "delete"]) {
    it(`a replica thousands of transactions behind applies them in batches and ends identical (${mode})`, { timeout: 600_000 }, async () => {
      const cluster = await startCluster(`batch-${mode}`);
      const [replica] = cluster.replicas;
      const name = `batch-${mode}.db`;
      await sqlite3(cluster.primary.db(name), `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);`);
      await sqlite3(cluster.primary.db(name), workload(1, 2));
      const before = await cluster.waitForConvergence(name);

      await replica.stop();
      await sqlite3(cluster.primary.db(name), workload(10_000, 40), { timeoutMs: 240_000 });
      const behind = txid(await cluster.primary.pos(name)) - txid(before);
      expect(behind).toBeGreaterThan(2500);

      await replica.start();
      // Minutes on a busy machine: thousands of files, each fsynced on the primary and applied here.
      await cluster.waitForConvergence(name, 400_000);
      await cluster.expectIdenticalBytes(name);
      expect(await sqlite3(replica.db(name), "PRAGMA integrity_check;")).toBe("ok");
      expect(await sqlite3(replica.db(name), "SELECT count(*), sum(length(b)) FROM t;")).toBe(
        await sqlite3(cluster.primary.db(name), "SELECT count(*), sum(length(b)) FROM t;"),
      );
      // Files were applied many at a time, yet every transaction is still its own file.
      const batches = [...replica.logs.matchAll(/applied (\d+) received LTX files in one batch/g)].map((m) => Number(m[1]));
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.reduce((a, b) => a + b, 0)).toBeGreaterThan(behind / 2);
      expect(Math.max(...batches)).toBeGreaterThan(10);
      expect((await replica.ltxFiles(name)).length).toBe(txid(await cluster.primary.pos(name)));
      expect(cluster.primary.logs).not.toMatch(/sending snapshot/);
    });
  }

  it("a replica killed (kill -9) while catching up restarts and ends identical", { timeout: 600_000 }, async () => {
    const cluster = await startCluster("batch-kill");
    const [replica] = cluster.replicas;
    const name = "batch-kill.db";
    await sqlite3(cluster.primary.db(name), "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    const start = await cluster.waitForConvergence(name);
    await replica.stop();
    await sqlite3(cluster.primary.db(name), workload(1, 40), { timeoutMs: 240_000 });

    await replica.start();
    // Kill it once it is part-way (wherever that lands: receiving, installing or applying a batch).
    await waitFor(async () => txid(await replica.pos(name).catch(() => null)) > txid(start) + 100, 60_000, "the replica to start catching up");
    await replica.kill9();
    await replica.start();
    await cluster.waitForConvergence(name, 120_000);
    await cluster.expectIdenticalBytes(name);
    expect(await sqlite3(replica.db(name), "PRAGMA integrity_check;")).toBe("ok");
  });

  it("a replica that stopped after installing a batch but before applying it replays the batch at startup", async () => {
    const cluster = await startCluster("batch-replay");
    const [replica] = cluster.replicas;
    const name = "batch-replay.db";
    await sqlite3(cluster.primary.db(name), "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    await sqlite3(cluster.primary.db(name), workload(1, 1));
    const applied = txid(await cluster.waitForConvergence(name));
    await replica.stop();
    await sqlite3(cluster.primary.db(name), workload(1000, 3));

    // What a crash between "install" and "apply" leaves: the batch's files in ltx/, none of
    // their pages in the database. Re-applying the last file alone cannot rebuild that state.
    const files = (await cluster.primary.ltxFiles(name)).filter((f) => parseInt(f.split("-")[0], 16) > applied);
    expect(files.length).toBeGreaterThan(100);
    for (const f of files) await fsp.copyFile(path.join(cluster.primary.ltxDir(name), f), path.join(replica.ltxDir(name), f));

    await replica.start();
    expect(replica.logs).toMatch(/replayed the trailing LTX files/);
    expect(await replica.pos(name)).toBe(await cluster.primary.pos(name));
    await cluster.waitForConvergence(name);
    await cluster.expectIdenticalBytes(name);
    expect(cluster.primary.logs).not.toMatch(/sending snapshot/);
  });
});
