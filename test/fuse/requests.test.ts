import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LitefsNode } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/** FUSE requests the mount answers in a way that spares apps a round trip (fuse.debug shows every request). */
let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("requests", { fuseDebug: true });
  await node.start();
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) console.log(node?.logs);
  await node?.cleanup();
});

function requests(opcode: string): number {
  return node.logs.split("\n").filter((line) => line.includes(`opcode: ${opcode} (`)).length;
}

describe("requests the kernel stops sending", () => {
  it("close() sends no FLUSH: the first one is answered ENOSYS, and the kernel asks no more", async () => {
    const db = node.db("flush.db");
    await sqlite3(db, "PRAGMA journal_mode=delete; CREATE TABLE t (v INTEGER);");
    // Each commit creates, closes and unlinks the journal; each sqlite3 run closes the database.
    for (let i = 0; i < 10; i++) await sqlite3(db, `INSERT INTO t VALUES (${i});`);
    expect(await sqlite3(db, "SELECT count(*), sum(v) FROM t;")).toBe("10|45");
    expect(requests("RELEASE")).toBeGreaterThanOrEqual(20);
    expect(requests("FLUSH")).toBeLessThanOrEqual(1);
  });
});
