import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { formatLtxFilename } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { sleep, waitFor, type LitefsNode } from "../support/node-process.js";
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

  it("a replica killed (kill -9) in the middle of a batch replays that batch's files at restart, not its whole history", { timeout: 600_000 }, async () => {
    const cluster = await startCluster("batch-midkill");
    const [replica] = cluster.replicas;
    const name = "batch-midkill.db";
    // 40 KB a transaction: a batch of up to 512 files takes a while to write through the mount.
    const inserts = (n: number) => Array.from({ length: n }, () => "INSERT INTO t (b) VALUES (randomblob(40000));").join("\n");
    await sqlite3(cluster.primary.db(name), "PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);");
    // A retained history longer than any batch (and than the 1,024 files the old recovery replayed at most).
    await sqlite3(cluster.primary.db(name), inserts(1100), { timeoutMs: 240_000 });
    await cluster.waitForConvergence(name, 120_000);
    const marker = path.join(replica.dataDir, "dbs", name, "applying");
    let replayed: { from: number; to: number; files: number; history: number } | null = null;
    for (let attempt = 0; attempt < 4 && !replayed; attempt++) {
      await replica.stop();
      await sqlite3(cluster.primary.db(name), inserts(700), { timeoutMs: 240_000 });
      await replica.start();
      const from = await killWhileApplying(replica, name, marker);
      if (from === null || !fs.existsSync(marker)) {
        // The batch ended between the check and the kill: try again with the next one.
        if (!replica.proc) await replica.start();
        await cluster.waitForConvergence(name, 120_000);
        continue;
      }
      const history = (await replica.ltxFiles(name)).length;
      await replica.start();
      const m = /replayed the trailing LTX files from TXID ([0-9a-f]{16}) to ([0-9a-f]{16}), (\d+) file\(s\): an apply was interrupted/.exec(replica.logs);
      if (m) {
        replayed = { from: parseInt(m[1], 16), to: parseInt(m[2], 16), files: Number(m[3]), history };
        expect(replayed.from).toBe(from);
      } else {
        // Killed after the last page was written: nothing to replay, and nothing reported as damage.
        expect(replica.logs).not.toMatch(/damaged/);
      }
      await cluster.waitForConvergence(name, 120_000);
      await cluster.expectIdenticalBytes(name);
      expect(await sqlite3(replica.db(name), "PRAGMA integrity_check;")).toBe("ok");
    }
    expect(replayed, "a kill landed inside a batch's apply in one of 4 attempts").not.toBeNull();
    console.log(`recovery after a kill mid-batch replayed ${replayed!.files} LTX files (TXIDs ${replayed!.from}..${replayed!.to}) of ${replayed!.history} retained`);
    // One batch (at most 512 files), not the history before it (the old recovery replayed up to 1,024).
    expect(replayed!.files).toBe(replayed!.to - replayed!.from + 1);
    expect(replayed!.files).toBeLessThanOrEqual(512);
    expect(replayed!.history).toBeGreaterThan(1100);
    expect(replayed!.files).toBeLessThan(replayed!.history - 500);
    expect(replica.logs).not.toMatch(/damaged/);
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

/**
 * Kills `replica` (kill -9) once a batch's apply marker names a TXID whose file is installed:
 * the batch is being written into the database. Returns that TXID (null: the replica caught up first).
 */
async function killWhileApplying(replica: LitefsNode, name: string, marker: string): Promise<number | null> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    let from: number | null = null;
    try {
      from = parseInt(fs.readFileSync(marker, "utf8"), 16);
    } catch {
      from = null;
    }
    if (from !== null && fs.existsSync(path.join(replica.ltxDir(name), formatLtxFilename(from, from)))) {
      replica.proc!.kill("SIGKILL");
      await replica.kill9();
      return from;
    }
    if (replica.logs.includes("caught up with the primary")) return null;
    await sleep(2);
  }
  throw new Error("the replica never started applying a batch");
}
