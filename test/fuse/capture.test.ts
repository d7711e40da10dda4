import * as fsp from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { replayLtxDir } from "../support/ltx-replay.js";
import { LitefsNode } from "../support/node-process.js";
import { runWorkload, sqlite3, sqlite3Raw } from "../support/sqlite-clients.js";

const MODES = ["delete", "truncate", "persist", "wal"] as const;

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("capture");
  await node.start();
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) console.log(node?.logs);
  await node?.cleanup();
});

/**
 * The checks every workload ends with: `-pos` equals the last LTX file, replaying all LTX files
 * onto an empty file gives the database byte for byte, and SQLite finds it intact.
 */
async function expectConsistent(name: string): Promise<Position> {
  // Fold the WAL into the database file (logically a no-op) so the file alone holds every page.
  await sqlite3(node.db(name), "PRAGMA wal_checkpoint(TRUNCATE);");
  expect(await sqlite3(node.db(name), "PRAGMA integrity_check;")).toBe("ok");
  const pos = Position.parse(await node.pos(name));
  const replay = await replayLtxDir(node.ltxDir(name));
  expect(replay.txid).toBe(pos.txid);
  expect(replay.checksum).toBe(pos.postApplyChecksum);
  const onMount = await fsp.readFile(node.db(name));
  expect(onMount.length).toBe(replay.bytes.length);
  expect(Buffer.compare(onMount, replay.bytes)).toBe(0);
  return pos;
}

describe("every committed transaction becomes exactly one LTX file", () => {
  for (const mode of MODES) {
    it(`sqlite3 CLI in ${mode} mode`, async () => {
      const db = node.db(`cli-${mode}.db`);
      await sqlite3(db, `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);`);
      const afterCreate = Position.parse(await node.pos(`cli-${mode}.db`));
      for (let i = 0; i < 5; i++) await sqlite3(db, `INSERT INTO t (v) VALUES ('row ${i}');`);
      await sqlite3(db, "UPDATE t SET v = v || '!' WHERE id % 2 = 0;");
      await sqlite3(db, "DELETE FROM t WHERE id = 3;");
      await sqlite3(db, "CREATE INDEX t_v ON t(v);");
      // A rollback and an empty write transaction record nothing.
      await sqlite3(db, "BEGIN; INSERT INTO t (v) VALUES ('gone'); ROLLBACK;");
      await sqlite3(db, "BEGIN IMMEDIATE; COMMIT;");
      const pos = await expectConsistent(`cli-${mode}.db`);
      expect(pos.txid - afterCreate.txid).toBe(8);
      expect(await sqlite3(db, "SELECT count(*), sum(length(v)) FROM t;")).toBe("4|22");
    });
  }

  for (const client of ["better-sqlite3", "python"] as const) {
    for (const mode of MODES) {
      it(`${client} program in ${mode} mode`, async () => {
        const name = `${client}-${mode}.db`;
        const result = await runWorkload(client, node.db(name), { journalMode: mode, transactions: 40 });
        const pos = await expectConsistent(name);
        // Setting WAL mode on a new database writes its header: one more transaction.
        expect(pos.txid).toBe(result.committed + (mode === "wal" ? 1 : 0));
        expect(Number(await sqlite3(node.db(name), "SELECT coalesce(sum(v), 0) FROM w;"))).toBe(result.sum);
      });
    }
  }
});

describe("rollbacks record nothing", () => {
  for (const mode of ["delete", "truncate", "persist"]) {
    it(`a rolled-back transaction that spilled pages to the file in ${mode} mode`, async () => {
      const name = `spill-${mode}.db`;
      const db = node.db(name);
      await sqlite3(db, `PRAGMA journal_mode=${mode}; CREATE TABLE t (v BLOB);`);
      const before = Position.parse(await node.pos(name));
      // A tiny cache forces SQLite to write dirty pages into the database file mid-transaction;
      // ROLLBACK then plays the journal back over them.
      await sqlite3(
        db,
        "PRAGMA cache_size=2; BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t SELECT randomblob(3000) FROM n; ROLLBACK;",
      );
      const after = await expectConsistent(name);
      expect(after.txid).toBe(before.txid);
      expect(after.postApplyChecksum).toBe(before.postApplyChecksum);
      expect(await sqlite3(db, "SELECT count(*) FROM t;")).toBe("0");
    });

    it(`a rolled-back update of hundreds of existing pages in ${mode} mode leaves no LTX file`, async () => {
      // More pages than commitTransaction checksums before writing (256): this rollback is only
      // found out while its LTX is encoded, and that file must go again.
      const name = `spill-update-${mode}.db`;
      const db = node.db(name);
      await sqlite3(
        db,
        `PRAGMA journal_mode=${mode}; CREATE TABLE t (v BLOB); ` +
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO t SELECT randomblob(3000) FROM n;",
      );
      const before = Position.parse(await node.pos(name));
      const files = await node.ltxFiles(name);
      await sqlite3(db, "PRAGMA cache_size=2; BEGIN; UPDATE t SET v = randomblob(3000); ROLLBACK;");
      const after = await expectConsistent(name);
      expect(after.txid).toBe(before.txid);
      expect(after.postApplyChecksum).toBe(before.postApplyChecksum);
      expect(await fsp.readdir(node.ltxDir(name))).toEqual(files);
      // And a big commit after it is recorded as usual.
      await sqlite3(db, "PRAGMA cache_size=2; UPDATE t SET v = randomblob(3000);");
      expect((await expectConsistent(name)).txid).toBe(before.txid + 1);
    });
  }
});

describe("page sizes and large transactions", () => {
  for (const pageSize of [512, 65536]) {
    for (const mode of ["delete", "wal"]) {
      it(`${pageSize}-byte pages in ${mode} mode`, async () => {
        const name = `ps${pageSize}-${mode}.db`;
        const result = await runWorkload("better-sqlite3", node.db(name), { journalMode: mode, transactions: 30, pageSize });
        const pos = await expectConsistent(name);
        expect(pos.txid).toBe(result.committed + (mode === "wal" ? 1 : 0));
        expect(await sqlite3(node.db(name), "PRAGMA page_size;")).toBe(String(pageSize));
      });
    }
  }

  it("a transaction larger than 100 MB is one LTX file", async () => {
    const name = "big.db";
    const db = node.db(name);
    await sqlite3(db, "CREATE TABLE big (id INTEGER PRIMARY KEY, blob BLOB);");
    const before = Position.parse(await node.pos(name));
    // 110 MiB of random (incompressible) data in one transaction.
    await sqlite3(db, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1760) INSERT INTO big (blob) SELECT randomblob(65536) FROM n; COMMIT;", {
      timeoutMs: 300_000,
    });
    const pos = await expectConsistent(name);
    expect(pos.txid).toBe(before.txid + 1);
    expect(await sqlite3(db, "SELECT count(*), sum(length(blob)) FROM big;")).toBe(`1760|${1760 * 65536}`);
  });

  it("VACUUM that shrinks the file", async () => {
    const name = "vacuum.db";
    const db = node.db(name);
    await sqlite3(db, "CREATE TABLE t (v BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO t SELECT randomblob(2000) FROM n;");
    const big = (await fsp.stat(db)).size;
    await sqlite3(db, "DELETE FROM t WHERE rowid > 10;");
    await sqlite3(db, "VACUUM;");
    const small = (await fsp.stat(db)).size;
    expect(small).toBeLessThan(big / 10);
    const pos = await expectConsistent(name);
    expect(pos.txid).toBe(4);
  });
});

describe("concurrent writers", () => {
  it("two writer processes with busy timeouts lose no update", async () => {
    const name = "counter.db";
    const db = node.db(name);
    await sqlite3(db, "CREATE TABLE c (n INTEGER); INSERT INTO c VALUES (0);");
    const increments = 100;
    const script = Array.from({ length: increments }, () => "UPDATE c SET n = n + 1;").join("\n");
    const writer = () => sqlite3(db, `.timeout 20000\n${script}`, { timeoutMs: 180_000 });
    await Promise.all([writer(), writer()]);
    expect(await sqlite3(db, "SELECT n FROM c;")).toBe(String(2 * increments));
    const pos = await expectConsistent(name);
    expect(pos.txid).toBe(2 + 2 * increments);
  });
});

describe("what the mount refuses", () => {
  it("a file that is not a SQLite database cannot be written", async () => {
    const r = await fsp.writeFile(node.db("notes.txt"), "hello, this is not a database\n").then(
      () => null,
      (err: NodeJS.ErrnoException) => err,
    );
    expect(r?.code).toBe("EINVAL");
    expect(node.logs).toMatch(/notes\.txt.*not a SQLite database/);
  });

  it("journal_mode OFF cannot be replicated and says so", async () => {
    const db = node.db("off.db");
    await sqlite3(db, "CREATE TABLE t (v);");
    const r = await sqlite3Raw(db, "PRAGMA journal_mode=OFF; INSERT INTO t VALUES (1);");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/disk I\/O error/);
    expect(node.logs).toMatch(/journal_mode OFF and MEMORY cannot be replicated/);
    expect(await sqlite3(db, "SELECT count(*) FROM t;")).toBe("0");
  });

  it("subdirectories and renames are refused", async () => {
    await expect(fsp.mkdir(node.db("sub"))).rejects.toMatchObject({ code: "EPERM" });
    await sqlite3(node.db("r.db"), "CREATE TABLE t (v);");
    await expect(fsp.rename(node.db("r.db"), node.db("s.db"))).rejects.toMatchObject({ code: "EPERM" });
  });

  it("mount files are named as LiteFS names them and -pos is read-only", async () => {
    await sqlite3(node.db("names.db"), "PRAGMA journal_mode=wal; CREATE TABLE t (v);");
    const names = await fsp.readdir(node.mnt);
    expect(names).toContain("names.db");
    expect(names).toContain("names.db-pos");
    expect(names).toContain(".lag");
    expect(names).not.toContain(".primary");
    const st = await fsp.stat(node.db("names.db-pos"));
    expect(st.mode & 0o777).toBe(0o444);
    expect((await fsp.readFile(node.db("names.db-pos"), "utf8"))).toMatch(/^[0-9a-f]{16}\/[0-9a-f]{16}\n$/);
    await expect(fsp.writeFile(node.db("names.db-pos"), "x")).rejects.toMatchObject({ code: "EACCES" });
  });
});
