import * as fsp from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LitefsNode, freePort } from "../support/node-process.js";
import { info } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * A file still open after it was unlinked (SQLite does this with a -wal or -journal that another
 * connection deletes) keeps its inode, with an empty path, for the handles open on it
 * (vendor/litefs-fuse/README.md). The fuse-native binding used before passed a NULL path on to
 * JavaScript and the daemon died of SIGSEGV (seen under load in the handoff tests).
 */

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("unlinked-open", { httpPort: await freePort() });
  await node.start();
});

afterAll(async () => {
  await node?.cleanup();
});

describe("a file used after it was unlinked", () => {
  it("can be read, stat'ed, synced and closed many times over, and the daemon keeps serving", async () => {
    const db = node.db("u.db");
    await sqlite3(db, "PRAGMA journal_mode=wal; CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    for (let i = 0; i < 50; i++) {
      // A -wal opened by one connection and deleted by another, as SQLite's last close does.
      const handle = await fsp.open(`${db}-wal`, "a+");
      await fsp.unlink(`${db}-wal`);
      await handle.stat().catch(() => undefined);
      await handle.read(Buffer.alloc(64), 0, 64, 0).catch(() => undefined);
      await handle.sync().catch(() => undefined);
      await handle.close();
    }
    // The binding hands "" for the unlinked file's path (an unpatched one handed garbage).
    expect(node.logs).not.toMatch(/path that is not a string/);
    expect(node.proc?.exitCode).toBeNull();
    expect(node.proc?.signalCode).toBeNull();
    expect((await info(node)).databases["u.db"]).toBeDefined();
    expect(await sqlite3(db, "INSERT INTO t VALUES (2); SELECT count(*) FROM t;")).toBe("2");
  });
});
