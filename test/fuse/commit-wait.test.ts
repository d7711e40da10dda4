import { spawn } from "node:child_process";
import * as fsp from "node:fs/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LitefsNode, freePort, sleep, waitFor } from "../support/node-process.js";
import { apiUrl } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * The FUSE reply that completes a commit can wait on a promise (what synchronous replication
 * will wait on) while the mount keeps serving other requests: the binding answers each request
 * whenever its callback runs, so a held reply holds only its own request. Proven with the
 * daemon's test-only commit gate.
 *
 * What the kernel itself serialises still waits: the held request keeps its file's inode lock
 * (so readers of that same -wal or journal wait too), and in DELETE mode the commit is an unlink,
 * which holds the mount directory's lock, so every lookup in the mount waits with it
 * (docs/architecture.md, "Commits that wait"). Hence WAL and TRUNCATE here.
 */

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("commitwait", { httpPort: await freePort(), env: { LITEFS_TEST_HOOKS: "1" } });
  await node.start();
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) console.log(node?.logs);
  await node?.cleanup();
});

async function gate(state: "closed" | "open"): Promise<void> {
  const res = await request(`${apiUrl(node)}/test/commit-gate?state=${state}`, { method: "POST" });
  expect(res.statusCode, await res.body.text()).toBe(200);
}

/** A sqlite3 process that runs `sql`; resolves with its exit code when it ends. */
function startWriter(db: string, sql: string): { done: Promise<number | null>; exited: () => boolean } {
  const child = spawn("sqlite3", ["-batch", "-bail", db], { stdio: ["pipe", "ignore", "ignore"] });
  let exited = false;
  const done = new Promise<number | null>((resolve) => child.once("exit", (code) => ((exited = true), resolve(code))));
  child.stdin.end(sql);
  return { done, exited: () => exited };
}

describe("a commit can wait while the mount keeps serving", () => {
  for (const mode of ["wal", "truncate"]) {
    it(`the writer's commit returns only after the gate opens; readers keep reading meanwhile (${mode})`, async () => {
      const name = `gated-${mode}.db`;
      const other = `other-${mode}.db`;
      await sqlite3(node.db(name), `PRAGMA journal_mode=${mode}; CREATE TABLE t (v); INSERT INTO t VALUES ('before');`);
      await sqlite3(node.db(other), "CREATE TABLE o (v); INSERT INTO o VALUES ('elsewhere');");
      const before = await node.pos(name);
      const heldBefore = node.logs.split("commit held by the test gate").length;

      await gate("closed");
      // journal_mode is per connection except for WAL: the writer sets it too.
      const writer = startWriter(node.db(name), `PRAGMA journal_mode=${mode};\nINSERT INTO t VALUES ('held');`);
      try {
        await waitFor(() => node.logs.split("commit held by the test gate").length > heldBefore, 20_000, "the commit to reach the gate");

        // Other processes keep using the mount while the commit is held.
        expect(await sqlite3(node.db(other), "SELECT v FROM o;")).toBe("elsewhere");
        expect((await fsp.readdir(node.mnt)).includes(name)).toBe(true);
        expect(await node.pos(other)).toMatch(/^[0-9a-f]{16}\/[0-9a-f]{16}$/);
        // Still held: give the writer every chance to return early, then check it did not.
        await sleep(300);
        expect(writer.exited()).toBe(false);
      } finally {
        await gate("open");
      }
      expect(await writer.done).toBe(0);
      expect(await sqlite3(node.db(name), "SELECT group_concat(v) FROM t;")).toBe("before,held");
      expect(await node.pos(name)).not.toBe(before);
    });
  }

  it("with the gate open nothing waits", async () => {
    const name = "ungated.db";
    await sqlite3(node.db(name), "CREATE TABLE t (v);");
    const held = node.logs.split("commit held by the test gate").length;
    for (let i = 0; i < 5; i++) await sqlite3(node.db(name), `INSERT INTO t VALUES (${i});`);
    expect(node.logs.split("commit held by the test gate").length).toBe(held);
  });
});
