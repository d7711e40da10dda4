import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LitefsNode, freePort } from "../support/node-process.js";
import { info } from "../support/roles.js";
import { run, sqlite3 } from "../support/sqlite-clients.js";

/**
 * On the primary every change to a database file must be part of a SQLite transaction: anything
 * else (a shell redirect, truncate(1), dd, a non-SQLite file) is refused before it touches a
 * byte, says why and points to `litefs import`; the database keeps its bytes and its position.
 */

let node: LitefsNode;

beforeAll(async () => {
  node = await LitefsNode.create("refusals", { httpPort: await freePort() });
  await node.start();
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) console.log(node?.logs);
  await node?.cleanup();
});

async function snapshot(name: string): Promise<{ pos: string; bytes: Buffer; ltx: string[] }> {
  return { pos: await node.pos(name), bytes: await fsp.readFile(node.db(name)), ltx: await node.ltxFiles(name) };
}

async function bash(script: string): Promise<{ code: number | null; stderr: string }> {
  const r = await run("bash", ["-c", script]);
  return { code: r.code, stderr: r.stderr };
}

describe("changes outside a SQLite transaction are refused on the primary", () => {
  for (const mode of ["delete", "wal"]) {
    it(`redirect, truncate, ftruncate, O_TRUNC and non-SQLite writes leave a ${mode}-mode database as it was`, async () => {
      const name = `guarded-${mode}.db`;
      const db = node.db(name);
      await sqlite3(db, `PRAGMA journal_mode=${mode}; CREATE TABLE t (v); INSERT INTO t VALUES ('one'), ('two');`);
      // Fold the WAL so the file alone holds every page: the byte comparison below is then exact.
      await sqlite3(db, "PRAGMA wal_checkpoint(TRUNCATE);");
      const before = await snapshot(name);

      const attempts: Array<[string, () => Promise<string | undefined>]> = [
        ["echo > db", async () => ((await bash(`echo text > '${db}'`)).stderr.match(/Operation not permitted/) ? "EPERM" : "OTHER")],
        ["truncate -s 4096", async () => ((await bash(`truncate -s 4096 '${db}'`)).stderr.match(/Operation not permitted/) ? "EPERM" : "OTHER")],
        ["truncate(path, 0)", () => fsp.truncate(db, 0).then(() => "OK", (e: NodeJS.ErrnoException) => e.code)],
        [
          "ftruncate(fd, 4096)",
          async () => {
            const fh = await fsp.open(db, "r+");
            try {
              return await fh.truncate(4096).then(() => "OK", (e: NodeJS.ErrnoException) => e.code);
            } finally {
              await fh.close();
            }
          },
        ],
        ["open O_TRUNC", () => fsp.open(db, "w").then(async (fh) => (await fh.close(), "OK"), (e: NodeJS.ErrnoException) => e.code)],
        [
          "dd over page 2",
          async () => ((await bash(`head -c 4096 /dev/urandom | dd of='${db}' bs=4096 seek=1 conv=notrunc status=none`)).stderr.match(/Operation not permitted/) ? "EPERM" : "OTHER"),
        ],
        [
          "page 2 rewritten with its own bytes shifted",
          async () => {
            const fh = await fsp.open(db, "r+");
            try {
              const page = Buffer.alloc(4096);
              await fh.read(page, 0, 4096, 4096);
              page.reverse();
              return await fh.write(page, 0, 4096, 4096).then(() => "OK", (e: NodeJS.ErrnoException) => e.code);
            } finally {
              await fh.close();
            }
          },
        ],
        ["non-SQLite bytes at offset 0", () => fsp.writeFile(db, "not a database at all, just text", { flag: "r+" }).then(() => "OK", (e: NodeJS.ErrnoException) => e.code)],
      ];
      for (const [what, attempt] of attempts) {
        const code = await attempt();
        expect(["EPERM", "EINVAL"], `${what}: ${code}`).toContain(code);
        const after = await snapshot(name);
        expect(after.pos, `${what}: position`).toBe(before.pos);
        expect(Buffer.compare(after.bytes, before.bytes), `${what}: bytes`).toBe(0);
        expect(after.ltx, `${what}: LTX files`).toEqual(before.ltx);
      }
      expect(await sqlite3(db, "PRAGMA integrity_check; SELECT group_concat(v) FROM t;")).toBe("ok\none,two");
      expect(node.logs).toMatch(new RegExp(`${name}: refusing to change the database file's size .*litefs import`));
      expect(node.logs).toMatch(new RegExp(`${name}: database written outside a SQLite transaction.*litefs import`));

      // SQLite itself still writes, checkpoints and vacuums.
      await sqlite3(db, "INSERT INTO t VALUES ('three'); DELETE FROM t WHERE v = 'one'; VACUUM;");
      expect(await sqlite3(db, "PRAGMA integrity_check; SELECT group_concat(v) FROM t;")).toBe("ok\ntwo,three");
    });
  }

  it("a refused create leaves nothing behind: not on the mount, not in data.dir, not in /info", async () => {
    await expect(fsp.writeFile(node.db("notes.txt"), "hello, this is not a database\n")).rejects.toMatchObject({ code: "EINVAL" });
    expect((await bash(`cp /bin/true '${node.db("blob.db")}'`)).code).not.toBe(0);
    expect((await bash(`echo text > '${node.db("echo.db")}'`)).code).not.toBe(0);
    const names = await fsp.readdir(node.mnt);
    for (const gone of ["notes.txt", "blob.db", "echo.db"]) {
      expect(names, gone).not.toContain(gone);
      expect(names, gone).not.toContain(`${gone}-pos`);
      await expect(fsp.stat(path.join(node.dataDir, "dbs", gone)), gone).rejects.toMatchObject({ code: "ENOENT" });
    }
    const databases = Object.keys((await info(node)).databases);
    expect(databases.filter((d) => ["notes.txt", "blob.db", "echo.db"].includes(d))).toEqual([]);
    // The name is free for a real database afterwards, even while the kernel still caches it.
    await sqlite3(node.db("blob.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    expect(await sqlite3(node.db("blob.db"), "SELECT count(*) FROM t;")).toBe("1");
  });
});
