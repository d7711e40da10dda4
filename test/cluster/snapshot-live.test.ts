import Sqlite from "better-sqlite3";
import * as fs from "node:fs";
import * as path from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { LitefsNode, freePort, waitFor } from "../support/node-process.js";
import { apiUrl, waitForPrimary } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * A snapshot for a replica is built off the thread that serves FUSE: the primary keeps
 * committing while it is written, and it still holds exactly the position it started at. The
 * daemon's test-only snapshot gate pauses every snapshot once its first pages are read; the test
 * then commits, checkpoints and vacuums, opens the gate, and checks that the replica received
 * and applied that one snapshot (the replica verifies its post-apply checksum, the primary that
 * its pages give the position's checksum) and ends with the primary's bytes.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

/** Rows of ~3,000 bytes: about one page each, so 1,500 rows span several of the snapshot's 256-page steps. */
const ROWS = 1500;

async function primaryWithGate(label: string): Promise<LitefsNode> {
  const cluster = await Cluster.start(label, 0, {
    primary: { retention: "300ms", retentionMonitorInterval: "100ms", env: { LITEFS_TEST_HOOKS: "1" } },
  });
  cleanups.push(() => cluster.cleanup());
  // The mount answers before the lease is taken; until then a create is refused.
  return waitForPrimary([cluster.primary]);
}

async function snapshotGate(node: LitefsNode, state: "closed" | "open"): Promise<void> {
  const res = await request(`${apiUrl(node)}/test/snapshot-gate?state=${state}`, { method: "POST" });
  expect(res.statusCode, await res.body.text()).toBe(200);
}

/** Fills `name` and waits until retention leaves one LTX file: a replica that joins now can only get a snapshot. */
async function fill(primary: LitefsNode, name: string, mode: string): Promise<void> {
  await sqlite3(
    primary.db(name),
    `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB);
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${ROWS}) INSERT INTO t SELECT x, randomblob(3000) FROM c;`,
  );
  await waitFor(async () => (await primary.ltxFiles(name)).length === 1, 10_000, "retention to leave one LTX file");
}

/**
 * Starts a replica with the gate closed, waits until the primary's snapshot of `name` is paused
 * half read, runs `meanwhile`, opens the gate, and checks the outcome. Returns the snapshot's TXID.
 */
async function snapshotWhile(primary: LitefsNode, name: string, meanwhile: () => Promise<void>): Promise<void> {
  await snapshotGate(primary, "closed");
  cleanups.push(() => snapshotGate(primary, "open"));
  const replica = await LitefsNode.create(`${name}-r`, { candidate: false, httpPort: await freePort(), hostname: "late", primaryUrl: primary.config.primaryUrl });
  cleanups.push(() => replica.cleanup());
  await replica.start([], { waitForMount: false });

  const paused = new RegExp(`snapshot paused by the test gate db=${name.replace(".", "\\.")} txid=(\\d+)`);
  await waitFor(() => paused.test(primary.logs), 20_000, "the snapshot to pause half read");
  const txid = Number(paused.exec(primary.logs)![1]);

  await meanwhile();
  // The commits went through while the snapshot was half read: nothing held the FUSE thread.
  expect(Position.parse(await primary.pos(name)).txid).toBeGreaterThan(txid + 2);

  await snapshotGate(primary, "open");
  const cluster = new Cluster(primary, [replica]);
  await cluster.waitForConvergence(name, 60_000);
  await cluster.expectIdenticalBytes(name);
  // The snapshot that was paused is the one that arrived: its pages gave exactly its position.
  // (Retention may have removed files committed during the pause: a second snapshot then follows.)
  const db = name.replace(".", "\\.");
  expect(replica.logs).toMatch(new RegExp(`snapshot received from the primary and applied db=${db} txid=${txid}\\b`));
  expect(primary.logs.match(new RegExp(`sending snapshot db=${db} txid=${txid}\\b`, "g")) ?? []).toHaveLength(1);
  expect(primary.logs).not.toMatch(/checksum|replication stream failed/);
}

describe("a snapshot built while the primary keeps committing", () => {
  it("DELETE mode: updates, inserts that grow the database and a VACUUM that shrinks it", async () => {
    const primary = await primaryWithGate("snapdel");
    const name = "snapdel.db";
    await fill(primary, name, "delete");
    await snapshotWhile(primary, name, async () => {
      await sqlite3(primary.db(name), `UPDATE t SET b = randomblob(3000) WHERE id % 7 = 0;`);
      await sqlite3(primary.db(name), `INSERT INTO t SELECT id + ${ROWS}, randomblob(3000) FROM t WHERE id <= 300;`);
      await sqlite3(primary.db(name), `DELETE FROM t WHERE id > 400; VACUUM;`);
      await sqlite3(primary.db(name), `UPDATE t SET b = randomblob(2000) WHERE id < 50;`);
    });
  });

  it("DELETE mode: a transaction in progress when the snapshot starts (the journal's copies), committed meanwhile", async () => {
    const primary = await primaryWithGate("snapjrnl");
    const name = "snapjrnl.db";
    await fill(primary, name, "delete");
    // A tiny page cache makes SQLite write changed pages into the database file before it commits.
    const conn = new Sqlite(primary.db(name));
    cleanups.push(async () => void conn.close());
    conn.pragma("cache_size = 2");
    conn.exec("BEGIN; UPDATE t SET b = randomblob(3000) WHERE id % 3 = 0;");
    await snapshotWhile(primary, name, async () => {
      conn.exec("COMMIT;");
      await sqlite3(primary.db(name), `UPDATE t SET b = randomblob(3000) WHERE id % 5 = 0;`);
      await sqlite3(primary.db(name), `DELETE FROM t WHERE id > 700; VACUUM;`);
    });
  });

  it("WAL mode: commits, checkpoints that restart and truncate the WAL, and a VACUUM", async () => {
    const primary = await primaryWithGate("snapwal");
    const name = "snapwal.db";
    await fill(primary, name, "wal");
    // One connection stays open, so committed frames stay in the WAL until checkpointed here.
    const conn = new Sqlite(primary.db(name));
    cleanups.push(async () => void conn.close());
    conn.pragma("wal_autocheckpoint = 0");
    conn.exec("UPDATE t SET b = randomblob(3000) WHERE id % 4 = 0;");
    conn.exec("UPDATE t SET b = randomblob(3000) WHERE id % 9 = 1;");
    await snapshotWhile(primary, name, async () => {
      conn.exec("UPDATE t SET b = randomblob(3000) WHERE id % 4 = 0;");
      conn.pragma("wal_checkpoint(RESTART)");
      // The WAL starts over: these frames overwrite the ones the snapshot's position named.
      conn.exec("UPDATE t SET b = randomblob(3000) WHERE id % 6 = 0;");
      conn.exec(`INSERT INTO t SELECT id + ${ROWS}, randomblob(3000) FROM t WHERE id <= 200;`);
      conn.pragma("wal_checkpoint(TRUNCATE)");
      conn.exec("DELETE FROM t WHERE id > 500; VACUUM;");
      conn.pragma("wal_checkpoint(TRUNCATE)");
      conn.exec("UPDATE t SET b = randomblob(100) WHERE id < 20;");
    });
  });
});

describe("a snapshot whose replica goes away", () => {
  it("is abandoned at once: its files are removed, and its worker stops and exits", async () => {
    const primary = await primaryWithGate("snapgone");
    const name = "snapgone.db";
    await fill(primary, name, "wal");
    const threads = () => fs.readdirSync(`/proc/${primary.pid}/task`).length;
    const before = threads();
    await snapshotGate(primary, "closed");
    cleanups.push(() => snapshotGate(primary, "open"));
    const replica = await LitefsNode.create(`${name}-r`, { candidate: false, httpPort: await freePort(), hostname: "gone", primaryUrl: primary.config.primaryUrl });
    cleanups.push(() => replica.cleanup());
    await replica.start([], { waitForMount: false });
    await waitFor(() => primary.logs.includes(`snapshot paused by the test gate db=${name}`), 20_000, "the snapshot to pause half read");
    const tmp = path.join(primary.dataDir, "tmp");
    const snapshotFiles = () => fs.readdirSync(tmp).filter((f) => f.startsWith("snapshot-"));
    expect(snapshotFiles().length).toBeGreaterThan(0); // the snapshot and its spill file

    await replica.kill9();
    // Still paused at the gate: nothing more is read or written for a replica that is gone.
    await waitFor(() => primary.logs.includes(`snapshot abandoned: the replica went away db=${name}`), 20_000, "the primary to abandon the snapshot");
    expect(snapshotFiles()).toEqual([]);

    await snapshotGate(primary, "open");
    // The worker is told to stop at its next step and exits on its own.
    await waitFor(() => threads() <= before, 20_000, `the snapshot worker to exit (threads: ${before} before)`);
    expect(primary.logs).not.toContain("snapshot written; sending it");
    expect(primary.logs).not.toMatch(/replication stream failed|checksum/);
  });
});
