import * as path from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { request } from "undici";
import { Cluster } from "../support/cluster.js";
import { ROOT, waitFor, type LitefsNode } from "../support/node-process.js";
import { apiUrl } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

const SYNC_WRITER = path.join(ROOT, "test/support/programs/sync-writer.mjs");

function syncConfig(extra: string): string {
  return `replication:\n  sync-replicas: 1\n${extra}`;
}

interface SyncInfo {
  required: number;
  members: string[];
  degraded: boolean;
  waiting: number;
  degradations: number;
}

async function syncInfo(node: LitefsNode): Promise<SyncInfo> {
  const res = await request(`${apiUrl(node)}/info`);
  return ((await res.body.json()) as { sync: SyncInfo }).sync;
}

/** The node's /events, collected as text until closed. */
async function followEvents(node: LitefsNode): Promise<{ text: () => string; close: () => void }> {
  const controller = new AbortController();
  const res = await request(`${apiUrl(node)}/events`, { signal: controller.signal });
  let text = "";
  res.body.on("data", (d: Buffer) => (text += d.toString()));
  res.body.on("error", () => undefined);
  return { text: () => text, close: () => controller.abort() };
}

/** One INSERT through the sqlite3 CLI, timed (ms). */
async function timedInsert(node: LitefsNode, db: string): Promise<number> {
  const started = Date.now();
  const r = await run("sqlite3", ["-batch", "-bail", node.db(db)], { input: ".timeout 30000\nINSERT INTO t VALUES (randomblob(10));\n", timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`insert failed: ${r.stderr}`);
  return Date.now() - started;
}

describe("synchronous replication (static lease)", () => {
  let c: Cluster | null = null;

  afterEach(async () => {
    await c?.cleanup();
    c = null;
  });

  for (const mode of ["wal", "delete"]) {
    test(`with sync-replicas 1 every commit (${mode} mode) is durable on the replica when it returns`, async () => {
      c = await Cluster.start("sync", 1, { primary: { extraYaml: syncConfig("  sync-timeout: 10s\n") } });
      const replica = c.replicas[0];
      // The table first, so the replica's ltx/ folder exists.
      await sqlite3(c.primary.db("s.db"), `PRAGMA journal_mode=${mode}; CREATE TABLE warm (v);`);
      await c.waitForConvergence("s.db");
      const r = await run(process.execPath, [SYNC_WRITER, c.primary.db("s.db"), replica.ltxDir("s.db"), "200", mode], { timeoutMs: 120_000 });
      expect(r.stdout.trim(), r.stderr).toBe("ok 200");
      const info = await syncInfo(c.primary);
      expect(info.members).toEqual(["replica0"]);
      expect(info.degraded).toBe(false);
      expect(info.degradations).toBe(0);
    });
  }

  test("a replica that stops: commits wait at most sync-timeout, go on asynchronously and say so; sync resumes once it is back", async () => {
    c = await Cluster.start("sync-stop", 1, { primary: { extraYaml: syncConfig("  sync-timeout: 1s\n") } });
    const [replica] = c.replicas;
    await sqlite3(c.primary.db("d.db"), "PRAGMA journal_mode=wal; CREATE TABLE t (v);");
    await c.waitForConvergence("d.db");
    await timedInsert(c.primary, "d.db");
    await waitFor(async () => (await syncInfo(c!.primary)).members.length === 1, 10_000, "the replica to join the in-sync set");

    const events = await followEvents(c.primary);
    replica.proc!.kill("SIGSTOP");
    try {
      // The first commit waits out sync-timeout, then the primary degrades and the next ones do not wait.
      const first = await timedInsert(c.primary, "d.db");
      expect(first).toBeGreaterThanOrEqual(900);
      const info = await syncInfo(c.primary);
      expect(info.degraded).toBe(true);
      expect(info.members).toEqual([]);
      expect(c.primary.logs).toContain("synchronous replication degraded");
      expect(events.text()).toContain('"type":"syncChange","data":{"degraded":true,"inSync":[],"required":1}');
      const later = await timedInsert(c.primary, "d.db");
      expect(later).toBeLessThan(first);
    } finally {
      replica.proc!.kill("SIGCONT");
    }
    // Back and caught up: it rejoins, and commits wait for it again.
    await timedInsert(c.primary, "d.db");
    await waitFor(async () => !(await syncInfo(c!.primary)).degraded, 20_000, "sync replication to be restored");
    expect(c.primary.logs).toContain("synchronous replication restored");
    await waitFor(() => events.text().includes('"degraded":false'), 10_000, "the restored event");
    events.close();
    await c.waitForConvergence("d.db");
  });

  test("sync-strict: a commit waits until the replica is back", async () => {
    c = await Cluster.start("sync-strict", 1, { primary: { extraYaml: syncConfig("  sync-timeout: 1s\n  sync-strict: true\n") } });
    const [replica] = c.replicas;
    await sqlite3(c.primary.db("x.db"), "PRAGMA journal_mode=wal; CREATE TABLE t (v);");
    await c.waitForConvergence("x.db");
    await timedInsert(c.primary, "x.db");
    await waitFor(async () => (await syncInfo(c!.primary)).members.length === 1, 10_000, "the replica to join the in-sync set");

    replica.proc!.kill("SIGSTOP");
    let done = false;
    const insert = timedInsert(c.primary, "x.db").finally(() => (done = true));
    try {
      await waitFor(async () => (await syncInfo(c!.primary)).waiting === 1, 10_000, "the commit to wait");
      // Well past sync-timeout it is still waiting: no degrading under sync-strict.
      const until = Date.now() + 3000;
      await waitFor(() => done || Date.now() > until, 5000, "three seconds or the commit");
      expect(done).toBe(false);
      expect((await syncInfo(c.primary)).degraded).toBe(false);
    } finally {
      replica.proc!.kill("SIGCONT");
    }
    await insert;
    await c.waitForConvergence("x.db");
    expect(await sqlite3(replica.db("x.db"), "SELECT count(*) FROM t")).toBe("2");
  });
});
