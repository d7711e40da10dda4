import * as fsp from "node:fs/promises";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { waitFor } from "../support/node-process.js";
import { sqlite3, sqlite3Raw } from "../support/sqlite-clients.js";

const MODES = ["delete", "truncate", "persist", "wal"] as const;

let cluster: Cluster;

beforeAll(async () => {
  cluster = await Cluster.start("repl", 2, { primary: { token: "s3cret" }, replica: { token: "s3cret" } });
});

afterAll(async () => {
  if (process.env.LITEFS_TEST_LOGS) for (const n of cluster?.nodes ?? []) console.log(n.config.hostname, n.logs);
  await cluster?.cleanup();
});

describe("one primary and two replicas converge", () => {
  for (const mode of MODES) {
    it(`create, insert, update, delete, schema change and VACUUM in ${mode} mode`, async () => {
      const name = `conv-${mode}.db`;
      const db = cluster.primary.db(name);
      await sqlite3(db, `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB);`);
      for (let i = 0; i < 20; i++) await sqlite3(db, `INSERT INTO t (v, b) VALUES ('v${i}', randomblob(${500 + i * 300}));`);
      await sqlite3(db, "UPDATE t SET v = upper(v) WHERE id % 3 = 0;");
      await sqlite3(db, "DELETE FROM t WHERE id > 10;");
      await sqlite3(db, "ALTER TABLE t ADD COLUMN extra INTEGER DEFAULT 7; CREATE INDEX t_v ON t(v);");
      await sqlite3(db, "VACUUM;");
      const pos = await cluster.waitForConvergence(name);
      expect(pos).toMatch(/^[0-9a-f]{16}\/[0-9a-f]{16}$/);
      await cluster.expectIdenticalBytes(name);
      for (const r of cluster.replicas) {
        expect(await sqlite3(r.db(name), "PRAGMA integrity_check;")).toBe("ok");
        expect(await sqlite3(r.db(name), "SELECT count(*), sum(extra) FROM t;")).toBe("10|70");
      }
    });
  }

  it("several databases at once, and a dropped database disappears everywhere", async () => {
    const names = ["multi-a.db", "multi-b.db", "multi-c.db"];
    await Promise.all(names.map((n, i) => sqlite3(cluster.primary.db(n), `CREATE TABLE t (v); INSERT INTO t VALUES (${i});`)));
    for (const n of names) await cluster.waitForConvergence(n);
    await fsp.unlink(cluster.primary.db("multi-b.db"));
    for (const r of cluster.replicas) {
      await waitFor(async () => !(await fsp.readdir(r.mnt)).includes("multi-b.db"), 20_000, `${r.config.hostname} to drop multi-b.db`);
    }
    await cluster.expectIdenticalBytes("multi-a.db");
    await cluster.expectIdenticalBytes("multi-c.db");
    // Re-created after the drop: replicated again from where it left off.
    await sqlite3(cluster.primary.db("multi-b.db"), "CREATE TABLE again (v); INSERT INTO again VALUES ('back');");
    await cluster.waitForConvergence("multi-b.db");
    for (const r of cluster.replicas) expect(await sqlite3(r.db("multi-b.db"), "SELECT v FROM again;")).toBe("back");
  });
});

describe("a replica is read-only", () => {
  for (const mode of ["delete", "wal"]) {
    it(`sqlite3 writes fail with a readonly error and change nothing (${mode})`, async () => {
      const name = `ro-${mode}.db`;
      await sqlite3(cluster.primary.db(name), `PRAGMA journal_mode=${mode}; CREATE TABLE t (v); INSERT INTO t VALUES (1);`);
      const pos = await cluster.waitForConvergence(name);
      const r = cluster.replicas[0];
      const res = await sqlite3Raw(r.db(name), "INSERT INTO t VALUES (2);");
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/attempt to write a readonly database/);
      expect(await sqlite3(r.db(name), "SELECT count(*) FROM t;")).toBe("1");
      expect(await r.pos(name)).toBe(pos);
      const st = await fsp.stat(r.db(name));
      expect(st.mode & 0o777).toBe(0o444);
      await expect(fsp.writeFile(r.db("new-on-replica.db"), "x")).rejects.toMatchObject({ code: "EACCES" });
    });
  }

  it(".primary names the primary and .lag reports no lag while connected", async () => {
    const r = cluster.replicas[1];
    expect((await fsp.readFile(`${r.mnt}/.primary`, "utf8")).trim()).toBe("primary");
    expect(Number((await fsp.readFile(`${r.mnt}/.lag`, "utf8")).trim())).toBeLessThan(1000);
    await expect(fsp.readFile(`${cluster.primary.mnt}/.primary`)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("the cluster API", () => {
  const url = () => cluster.primary.config.primaryUrl!;

  it("a wrong or missing token gets 401 and nothing is streamed", async () => {
    const body = JSON.stringify({ nodeId: "0000000000000001", hostname: "intruder", clusterId: "", positions: {} });
    for (const headers of [{}, { authorization: "Bearer wrong" }, { authorization: "Basic czNjcmV0" }]) {
      const res = await request(`${url()}/stream`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
      expect(res.statusCode).toBe(401);
      const text = await res.body.text();
      expect(text).toMatch(/unauthorized/);
      expect(text).not.toMatch(/LTX1/);
    }
    const info = await request(`${url()}/info`);
    expect(info.statusCode).toBe(401);
    await info.body.text();
    expect(cluster.primary.logs).toMatch(/unauthorized request for \/stream/);
  });

  it("a malformed /stream body gets 400 and the primary keeps serving the replicas", async () => {
    const auth = { authorization: "Bearer s3cret", "content-type": "application/json" };
    const bad = [
      "not json at all",
      JSON.stringify({ nodeId: "zz", hostname: "x", clusterId: "", positions: {} }),
      JSON.stringify({ nodeId: "0000000000000001", hostname: "x", clusterId: "", positions: { "a.db": "12/34" } }),
      JSON.stringify({ nodeId: "0000000000000001", hostname: "x", clusterId: "", positions: [] }),
      JSON.stringify({ nodeId: "0000000000000001", hostname: "x", clusterId: "", positions: {}, extra: 1 }),
    ];
    for (const body of bad) {
      const res = await request(`${url()}/stream`, { method: "POST", body, headers: auth });
      expect(res.statusCode, body).toBe(400);
      expect(await res.body.text()).toMatch(/error/);
    }
    const huge = await request(`${url()}/stream`, { method: "POST", body: "x".repeat(2 << 20), headers: auth }).catch((err: Error) => err);
    if (!(huge instanceof Error)) {
      expect(huge.statusCode).toBe(400);
      await huge.body.text();
    }
    // Still serving: a new commit reaches both replicas.
    await sqlite3(cluster.primary.db("after-garbage.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    await cluster.waitForConvergence("after-garbage.db");
  });

  it("GET /info describes the node", async () => {
    const res = await request(`${url()}/info`, { headers: { authorization: "Bearer s3cret" } });
    expect(res.statusCode).toBe(200);
    const info = (await res.body.json()) as { isPrimary: boolean; clusterId: string; databases: Record<string, unknown> };
    expect(info.isPrimary).toBe(true);
    expect(info.clusterId).toMatch(/^LFSC[0-9A-F]{16}$/);
    expect(Object.keys(info.databases)).toContain("after-garbage.db");
  });
});

describe("lease.databases", () => {
  it("a non-candidate replica with lease.databases receives only those databases", async () => {
    const { LitefsNode, freePort } = await import("../support/node-process.js");
    const picky = await LitefsNode.create("picky", {
      candidate: false,
      httpPort: await freePort(),
      hostname: "picky",
      primaryUrl: cluster.primary.config.primaryUrl,
      token: "s3cret",
      databases: ["wanted.db"],
    });
    try {
      await picky.start();
      await sqlite3(cluster.primary.db("wanted.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
      await sqlite3(cluster.primary.db("unwanted.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1);");
      await new Cluster(cluster.primary, [picky]).waitForConvergence("wanted.db");
      const names = await fsp.readdir(picky.mnt);
      expect(names).toContain("wanted.db");
      expect(names).not.toContain("unwanted.db");
      expect(names).not.toContain("conv-wal.db");
    } finally {
      await picky.cleanup();
    }
  });
});
