import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * On a replica no process but the node's own mount agent may change a database, its journal or
 * its WAL, whatever flags it opens with: the agent is recognised by the PID the kernel reports,
 * not by anything a caller can choose (the old back door was O_NOATIME).
 */

const C = fs.constants;
const FLAG_SETS: Array<[string, number]> = [
  ["O_RDWR", C.O_RDWR],
  ["O_WRONLY", C.O_WRONLY],
  ["O_RDWR|O_NOATIME", C.O_RDWR | C.O_NOATIME],
  ["O_WRONLY|O_NOATIME", C.O_WRONLY | C.O_NOATIME],
  ["O_RDWR|O_SYNC", C.O_RDWR | C.O_SYNC],
  ["O_RDWR|O_DIRECT", C.O_RDWR | C.O_DIRECT],
  ["O_WRONLY|O_TRUNC", C.O_WRONLY | C.O_TRUNC],
  ["O_WRONLY|O_APPEND", C.O_WRONLY | C.O_APPEND],
  ["O_RDWR|O_CREAT", C.O_RDWR | C.O_CREAT],
  ["O_RDWR|O_NOATIME|O_SYNC|O_APPEND", C.O_RDWR | C.O_NOATIME | C.O_SYNC | C.O_APPEND],
];
const REFUSED = ["EACCES", "EROFS"];

let cluster: Cluster;

beforeAll(async () => {
  cluster = await Cluster.start("authority", 1);
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) for (const n of cluster?.nodes ?? []) console.log(n.config.hostname, n.logs);
  await cluster?.cleanup();
});

/** Tries one open + write + ftruncate from this (outside) process; returns the errno codes met, in order. */
async function tryToChange(file: string, flags: number): Promise<string[]> {
  const codes: string[] = [];
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, flags, 0o644);
  } catch (err) {
    return [(err as NodeJS.ErrnoException).code ?? String(err)];
  }
  try {
    // 4096-byte aligned buffer of garbage: also valid for O_DIRECT.
    const garbage = Buffer.alloc(4096, 0x5a);
    for (const attempt of [() => fh.write(garbage, 0, garbage.length, 0), () => fh.write(garbage, 0, garbage.length, 8192), () => fh.truncate(4096)]) {
      try {
        await attempt();
        codes.push("OK");
      } catch (err) {
        codes.push((err as NodeJS.ErrnoException).code ?? String(err));
      }
    }
  } finally {
    await fh.close();
  }
  return codes;
}

describe("a replica refuses every change by any process but its mount agent", () => {
  for (const mode of ["delete", "wal"]) {
    it(`database, journal and WAL (${mode} mode), every flag combination`, async () => {
      const name = `authority-${mode}.db`;
      const replica = cluster.replicas[0];
      await sqlite3(cluster.primary.db(name), `PRAGMA journal_mode=${mode}; CREATE TABLE t (v); INSERT INTO t VALUES ('kept');`);
      const pos = await cluster.waitForConvergence(name);
      // A WAL reader on the replica creates the -wal (empty) as it must to read at all.
      expect(await sqlite3(replica.db(name), "SELECT v FROM t;")).toBe("kept");

      const results: Record<string, string[]> = {};
      for (const suffix of ["", "-journal", "-wal"]) {
        for (const [label, flags] of FLAG_SETS) {
          results[`${name}${suffix} ${label}`] = await tryToChange(replica.db(`${name}${suffix}`), flags);
        }
        // By path, as truncate(1) does it.
        results[`${name}${suffix} truncate()`] = await fsp.truncate(replica.db(`${name}${suffix}`), 0).then(
          () => ["OK"],
          (err: NodeJS.ErrnoException) => [err.code ?? String(err)],
        );
      }
      for (const [what, codes] of Object.entries(results)) {
        // A -journal or -wal that does not exist and is not created is no change either.
        const fine = codes.every((c) => REFUSED.includes(c) || (c === "ENOENT" && /-(journal|wal) /.test(what)));
        expect(fine, `${what}: ${codes.join(", ")}`).toBe(true);
      }
      // Nothing changed: same position, same bytes, intact, and no journal left behind.
      expect(await replica.pos(name)).toBe(pos);
      await cluster.expectIdenticalBytes(name);
      expect(await sqlite3(replica.db(name), "PRAGMA integrity_check; SELECT v FROM t;")).toBe("ok\nkept");
      expect((await fsp.readdir(replica.mnt)).filter((f) => f === `${name}-journal`)).toEqual([]);

      // The mount agent still applies what the primary sends.
      await sqlite3(cluster.primary.db(name), "INSERT INTO t VALUES ('after');");
      await cluster.waitForConvergence(name);
      expect(await sqlite3(replica.db(name), "SELECT group_concat(v) FROM t;")).toBe("kept,after");
      await cluster.expectIdenticalBytes(name);
    });
  }

  it("a database cannot be created or removed on a replica, and a refused create leaves nothing behind", async () => {
    const replica = cluster.replicas[0];
    await expect(fsp.writeFile(replica.db("new-on-replica.db"), "x")).rejects.toMatchObject({ code: "EACCES" });
    await expect(sqlite3(replica.db("sqlite-on-replica.db"), "CREATE TABLE t (v);")).rejects.toThrow(/readonly|unable to open/);
    const names = await fsp.readdir(replica.mnt);
    expect(names.filter((n) => n.includes("on-replica"))).toEqual([]);

    await sqlite3(cluster.primary.db("keep.db"), "CREATE TABLE t (v);");
    await cluster.waitForConvergence("keep.db");
    await expect(fsp.unlink(replica.db("keep.db"))).rejects.toMatchObject({ code: "EACCES" });
    expect((await fsp.readdir(replica.mnt)).includes("keep.db")).toBe(true);
  });
});
