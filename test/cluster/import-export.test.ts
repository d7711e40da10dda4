import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { request } from "undici";
import { Position, databaseChecksum } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { CLI, ROOT, makeTempDir, waitFor, type LitefsNode } from "../support/node-process.js";
import { apiUrl } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

function litefs(node: LitefsNode, verb: string, ...args: string[]) {
  return run(process.execPath, [CLI, verb, "-config", node.configPath, ...args]);
}

/** A database file (outside any mount) whose table t holds `rows` rows tagged `tag`. */
async function makeDatabase(file: string, tag: string, rows: number, journalMode = "delete"): Promise<void> {
  await sqlite3(
    file,
    `PRAGMA journal_mode=${journalMode}; CREATE TABLE t (tag TEXT, pad BLOB);
     WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows}) INSERT INTO t SELECT '${tag}', randomblob(200) FROM c;
     PRAGMA wal_checkpoint(TRUNCATE);`,
  );
}

describe("import and export", () => {
  let c: Cluster;
  let dir: string;

  beforeAll(async () => {
    c = await Cluster.start("ie", 2, { primary: { env: { LITEFS_TEST_HOOKS: "1" } } });
    dir = await makeTempDir("ie-files");
  });

  afterAll(async () => {
    await c?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("export, import under another name, export again: identical files, the file's checksum, every node converges", async () => {
    await sqlite3(c.primary.db("orig.db"), "PRAGMA journal_mode=wal; CREATE TABLE t (tag TEXT, pad BLOB); INSERT INTO t SELECT 'a', randomblob(300) FROM (SELECT 1 UNION SELECT 2 UNION SELECT 3);");
    await c.waitForConvergence("orig.db");
    const first = path.join(dir, "first.db");
    const exported = await litefs(c.replicas[0], "export", "-name", "orig.db", first);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain(`position ${await c.primary.pos("orig.db")}`);

    const imported = await litefs(c.primary, "import", "-name", "copy.db", first);
    expect(imported.code, imported.stderr).toBe(0);
    const second = path.join(dir, "second.db");
    expect((await litefs(c.primary, "export", "-name", "copy.db", second)).code).toBe(0);
    expect(Buffer.compare(fs.readFileSync(first), fs.readFileSync(second))).toBe(0);

    const checksum = (await run(process.execPath, [CLI, "ltx", "checksum", first])).stdout.trim();
    expect(await c.primary.pos("copy.db")).toBe(`0000000000000001/${checksum}`);
    await c.waitForConvergence("copy.db");
    await c.expectIdenticalBytes("copy.db");
    expect(await sqlite3(c.replicas[1].db("copy.db"), "SELECT count(*) FROM t")).toBe("3");
  });

  test("an import replaces a database while readers on every node hold connections open: old or new, never a mix", async () => {
    const oldFile = path.join(dir, "old.db");
    const newFile = path.join(dir, "new.db");
    await makeDatabase(oldFile, "old", 1000, "wal");
    await makeDatabase(newFile, "new", 3000, "wal");
    expect((await litefs(c.primary, "import", "-name", "swap.db", oldFile)).code).toBe(0);
    await c.waitForConvergence("swap.db");

    const readers = c.nodes.map((n) => {
      const proc = spawn(process.execPath, [path.join(ROOT, "test/support/programs/import-reader.mjs"), n.db("swap.db")], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      proc.stdout.on("data", (d) => (out += d.toString()));
      proc.stderr.on("data", (d) => (out += d.toString()));
      return { proc, output: () => out, exited: new Promise((resolve) => proc.once("exit", resolve)) };
    });
    await waitFor(() => readers.every((r) => r.output().includes("ready")), 10_000, "the readers");

    const imported = await litefs(c.primary, "import", "-name", "swap.db", newFile);
    expect(imported.code, imported.stderr).toBe(0);
    await c.waitForConvergence("swap.db");
    // Every reader, its connection open all along, moves on to the new content.
    for (const r of readers) await waitFor(() => r.output().includes("saw new:3000"), 10_000, `a reader to see the import: ${r.output()}`);
    for (const r of readers) r.proc.kill("SIGTERM");
    await Promise.all(readers.map((r) => r.exited));
    for (const r of readers) {
      const summary = JSON.parse(r.output().trim().split("\n").pop()!) as { seen: Record<string, number>; problem: string | null };
      expect(summary.problem).toBeNull();
      expect(Object.keys(summary.seen).every((k) => k === "old:1000" || k === "new:3000")).toBe(true);
      expect(summary.seen["new:3000"]).toBeGreaterThan(0);
    }
  });

  test("a writer on the primary waits out an import and goes on writing into the imported database", async () => {
    // Its busy timeout (30 s) covers the import's hold of the write lock even on a loaded machine.
    const file = path.join(dir, "acked.db");
    // The imported file has the writer's table, with rows 1..500 of its own.
    await sqlite3(file, "CREATE TABLE acked (id INTEGER PRIMARY KEY, pad BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) INSERT INTO acked SELECT x, randomblob(100) FROM c;");
    const writer = spawn(process.execPath, [path.join(ROOT, "test/support/programs/writer.mjs"), c.primary.db("busy.db"), "wal", "1000000", "1000000000", "30000"], { stdio: ["ignore", "pipe", "pipe"] });
    let acked = "";
    let errors = "";
    writer.stdout.on("data", (d) => (acked += d.toString()));
    writer.stderr.on("data", (d) => (errors += d.toString()));
    const exited = new Promise<number | null>((resolve) => writer.once("exit", resolve));
    try {
      // On a failure: how far the writer got, what it said, and what the primary logged.
      const state = () => `${acked.split("\n").length - 1} commits acknowledged, writer stderr: ${JSON.stringify(errors)}\n${c.primary.logs.slice(-3000)}`;
      // Early, well before the WAL's first checkpoint: the database file itself is still empty
      // then, and only the -wal says the database is in WAL mode (its writers lock the -shm).
      await waitFor(() => acked.split("\n").length > 20, 30_000, "the writer to commit").catch((err: Error) => {
        throw new Error(`${err.message}: ${state()}`);
      });
      // The node hears late that the agent let go of the write lock, so the writer's next commit
      // comes first: it must find the database writable again, not "held" by the import.
      const delay = await request(`${apiUrl(c.primary)}/test/release-delay?ms=1000`, { method: "POST" });
      expect(delay.statusCode).toBe(200);
      await delay.body.dump();
      const imported = await litefs(c.primary, "import", "-name", "busy.db", file);
      expect(imported.code, imported.stderr).toBe(0);
      const after = acked.split("\n").length;
      await waitFor(() => acked.split("\n").length > after + 200, 30_000, "the writer to go on after the import").catch((err: Error) => {
        throw new Error(`${err.message}: ${state()}`);
      });
    } finally {
      writer.kill("SIGTERM");
    }
    await exited;
    expect(errors).toBe("");
    // The imported rows, and rows the writer committed after the import; none from before it.
    const ids = (await sqlite3(c.primary.db("busy.db"), "SELECT count(*) FROM acked WHERE id <= 500; SELECT count(*) FROM acked WHERE id > 1000000;")).split("\n");
    expect(ids[0]).toBe("500");
    expect(Number(ids[1])).toBeGreaterThan(0);
    await c.waitForConvergence("busy.db");
    // The replicas were behind the import's snapshot, not diverged: nothing of theirs was lost.
    expect(c.primary.logs).toMatch(/replica replica\d is at TXID \d+ of busy\.db, older than the LTX files this primary keeps/);
    expect(c.primary.logs).not.toContain("which this primary never had");
  });

  test("a file that is not a whole SQLite database is refused with the reason, and nothing changes on any node", async () => {
    await sqlite3(c.primary.db("keep.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await c.waitForConvergence("keep.db");
    const before = await Promise.all(c.nodes.map((n) => n.pos("keep.db")));
    const good = path.join(dir, "good.db");
    await makeDatabase(good, "x", 100);
    const cases: Array<[string, Buffer, RegExp]> = [
      ["garbage", Buffer.from("this is not a database at all, not even close to one ".repeat(10)), /does not start with .{0,2}SQLite format 3/],
      ["empty", Buffer.alloc(0), /empty/],
      ["truncated", fs.readFileSync(good).subarray(0, 4096 * 3 + 100), /not a whole number of 4096-byte pages/],
      ["short by a page", fs.readFileSync(good).subarray(0, fs.statSync(good).size - 4096), /the header says \d+ pages but the file holds \d+/],
    ];
    for (const [label, bytes, reason] of cases) {
      const file = path.join(dir, `${label}.db`);
      fs.writeFileSync(file, bytes);
      // The node's own check, whatever the CLI checks first.
      const res = await request(`${apiUrl(c.primary)}/import?name=keep.db`, { method: "POST", body: bytes });
      const body = await res.body.text();
      expect(res.statusCode, `${label}: ${body}`).toBe(400);
      expect(body, label).toMatch(reason);
      const cli = await litefs(c.primary, "import", "-name", "keep.db", file);
      expect(cli.code, label).toBe(1);
      expect(cli.stderr, label).toMatch(reason);
    }
    const hot = path.join(dir, "hot.db");
    fs.copyFileSync(good, hot);
    fs.writeFileSync(`${hot}-journal`, Buffer.concat([Buffer.from([0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7]), Buffer.alloc(600)]));
    const cli = await litefs(c.primary, "import", "-name", "keep.db", hot);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("hot journal");

    expect(await Promise.all(c.nodes.map((n) => n.pos("keep.db")))).toEqual(before);
    expect(fs.existsSync(c.primary.db("garbage.db"))).toBe(false);
  });

  test("an export while the primary commits: the file is exactly the position it began at, and the commits went on meanwhile", async () => {
    const db = c.primary.db("live.db");
    await sqlite3(
      db,
      `PRAGMA journal_mode=wal; CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB);
       WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) INSERT INTO t SELECT x, randomblob(2000) FROM c;
       PRAGMA wal_checkpoint(TRUNCATE);`,
    );
    const gate = async (state: "closed" | "open") => {
      const res = await request(`${apiUrl(c.primary)}/test/snapshot-gate?state=${state}`, { method: "POST" });
      expect(res.statusCode, await res.body.text()).toBe(200);
    };
    await gate("closed");
    try {
      const file = path.join(dir, "live-export.db");
      const exporting = litefs(c.primary, "export", "-name", "live.db", file);
      const paused = /snapshot paused by the test gate db=live\.db txid=(\d+)/;
      await waitFor(() => paused.test(c.primary.logs), 20_000, "the export to pause half read");
      const txid = Number(paused.exec(c.primary.logs)![1]);
      // Commits while the export is half read: they rewrite pages it has not read yet, in the WAL
      // and, through the checkpoint, in the database file. The FUSE thread is not held.
      await sqlite3(db, "UPDATE t SET pad = randomblob(2000) WHERE id > 1000; DELETE FROM t WHERE id <= 10; PRAGMA wal_checkpoint(TRUNCATE);");
      expect(Position.parse(await c.primary.pos("live.db")).txid).toBe(txid + 2);
      await gate("open");

      const res = await exporting;
      expect(res.code, res.stderr).toBe(0);
      const position = Position.parse(/at position (\S+)/.exec(res.stdout)![1]);
      expect(position.txid).toBe(txid);
      const checksum = (await run(process.execPath, [CLI, "ltx", "checksum", file])).stdout.trim();
      expect(checksum).toBe(position.toString().split("/")[1]);
      expect(await sqlite3(file, "PRAGMA integrity_check; SELECT count(*), min(id) FROM t;")).toBe("ok\n2000|1");
    } finally {
      await gate("open");
    }
  });

  test("exports on a replica while it applies a stream of commits: each file is exactly the position it reports", async () => {
    const db = c.primary.db("stream.db");
    const writer = spawn(process.execPath, [path.join(ROOT, "test/support/programs/writer.mjs"), db, "wal", "1", "1000000000", "30000"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let acked = 0;
    let errors = "";
    writer.stdout.on("data", (d: Buffer) => (acked += d.toString().split("\n").length - 1));
    writer.stderr.on("data", (d) => (errors += d.toString()));
    const exited = new Promise((resolve) => writer.once("exit", resolve));
    try {
      await waitFor(() => acked > 50, 30_000, "the writer to commit");
      await waitFor(async () => (await c.replicas[0].pos("stream.db").catch(() => "")) !== "", 30_000, "the replica to have stream.db");
      // Straight to the API (the CLI's start-up would space the exports out): one export after
      // the other, each landing wherever the replica's applies happen to be.
      const seen = new Set<number>();
      for (let i = 0; i < 40; i++) {
        const res = await request(`${apiUrl(c.replicas[0])}/export?name=stream.db`);
        const body = Buffer.from(await res.body.arrayBuffer());
        expect(res.statusCode, `export ${i}: ${body.toString()}`).toBe(200);
        const position = Position.parse(String(res.headers["litefs-position"]));
        const pageSize = Number(res.headers["litefs-page-size"]);
        expect(databaseChecksum(body, pageSize), `export ${i}`).toBe(position.postApplyChecksum);
        seen.add(position.txid);
      }
      // The replica moved on between the exports: they were taken mid-stream, not at one quiet position.
      expect(seen.size).toBeGreaterThan(1);
    } finally {
      writer.kill("SIGTERM");
    }
    await exited;
    expect(errors).toBe("");
  });

  test("a replica refuses an import and names the primary; export works there", async () => {
    const file = path.join(dir, "r.db");
    await makeDatabase(file, "r", 10);
    const res = await litefs(c.replicas[0], "import", "-name", "r.db", file);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`import on the primary primary (${apiUrl(c.primary)})`);
    const missing = await litefs(c.replicas[0], "export", "-name", "nope.db", path.join(dir, "nope.db"));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no database named "nope.db"');
    expect(fs.existsSync(path.join(dir, "nope.db"))).toBe(false);
  });
});
