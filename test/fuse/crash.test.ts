import { spawn } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { replayLtxDir } from "../support/ltx-replay.js";
import { LitefsNode, ROOT, sleep, waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("crash");
  await node.start();
});

afterAll(async () => {
  await node?.cleanup();
});

/** Starts the acknowledging writer; resolves with every id whose commit returned. */
function startWriter(db: string, mode: string, startId: number): { acked: number[]; done: Promise<void> } {
  const acked: number[] = [];
  const child = spawn(process.execPath, [path.join(ROOT, "test/support/programs/writer.mjs"), db, mode, String(startId)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) acked.push(Number(l));
  });
  const done = new Promise<void>((resolve) => child.on("close", () => resolve()));
  return { acked, done };
}

describe("kill -9 of the daemon in the middle of a write load", () => {
  for (const mode of ["delete", "truncate", "persist", "wal"]) {
    it(`loses no acknowledged transaction in ${mode} mode (many kill points)`, async () => {
      const name = `crash-${mode}.db`;
      const db = node.db(name);
      let nextId = 1;
      const allAcked: number[] = [];
      const killPoints = [150, 400, 60, 900, 250, 30, 600, 1200];
      for (const delay of killPoints) {
        const writer = startWriter(db, mode, nextId);
        // Kill only once the writer is really writing.
        await waitFor(() => writer.acked.length > 3, 20_000, "writer to start committing");
        await sleep(delay);
        await node.kill9();
        await writer.done;
        allAcked.push(...writer.acked);
        nextId = (writer.acked.at(-1) ?? nextId) + 1000;

        await node.start();
        expect(await sqlite3(db, "PRAGMA integrity_check;")).toBe("ok");
        const present = new Set((await sqlite3(db, "SELECT id FROM acked;")).split("\n").filter(Boolean).map(Number));
        const missing = allAcked.filter((id) => !present.has(id));
        expect(missing).toEqual([]);
      }

      // The position equals the last LTX, and the LTX history rebuilds the database exactly.
      await sqlite3(db, "PRAGMA wal_checkpoint(TRUNCATE);");
      const pos = Position.parse(await node.pos(name));
      const replay = await replayLtxDir(node.ltxDir(name));
      expect(replay.txid).toBe(pos.txid);
      expect(replay.checksum).toBe(pos.postApplyChecksum);
      expect(Buffer.compare(await fsp.readFile(db), replay.bytes)).toBe(0);
    });
  }
});
