import * as fsp from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HEADER_SIZE, decodeHeader, formatLtxFilename } from "../../src/ltx/index.js";
import { backupStatus, create, expectUnbrokenChain, fileBackupObjects, fileChecksum, litefs, txidOf, waitForBackup, writeLoad } from "../support/backup.js";
import { consul, consulNode } from "../support/consul-nodes.js";
import { LitefsNode, freePort, makeTempDir, sleep, waitFor } from "../support/node-process.js";
import { waitForPrimary } from "../support/roles.js";
import { S3Proxy } from "../support/s3-proxy.js";
import { S3Server } from "../support/s3-server.js";
import { sqlite3 } from "../support/sqlite-clients.js";
import { scrape } from "../support/prometheus.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

async function tempDir(label: string): Promise<string> {
  const dir = await makeTempDir(label);
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

async function primary(label: string, backupYaml: string): Promise<LitefsNode> {
  const node = await LitefsNode.create(label, { candidate: true, httpPort: await freePort(), hostname: label, extraYaml: backupYaml });
  cleanups.push(() => node.cleanup());
  await node.start();
  return node;
}

function fileBackupYaml(dir: string, extra: Record<string, string> = {}): string {
  return ["backup:", "  type: file", `  url: file://${dir}`, "  interval: 100ms", ...Object.entries(extra).map(([k, v]) => `  ${k}: ${v}`)].join("\n");
}

/** Restores with the CLI; returns the position it reports and the output's own checksum. */
async function restore(args: string[], out: string): Promise<{ position: string; checksum: string; objects: number }> {
  const r = await litefs(["restore", ...args, "-o", out]);
  if (r.code !== 0) throw new Error(`litefs restore ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  const position = /at position ([0-9a-f]{16}\/[0-9a-f]{16})/.exec(r.stdout)?.[1] ?? "";
  const checksum = await fileChecksum(out);
  await fsp.rm(out, { force: true });
  return { position, checksum, objects: Number(/from (\d+) objects/.exec(r.stdout)?.[1]) };
}

describe("continuous backup to S3 (s3rver) with point-in-time restore", () => {
  it("20 random points in time, by TXID and by timestamp, restore exactly the database as it was then", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const node = await primary("bk-pitr", s3.backupYaml("pitr", { interval: "200ms", "snapshot-interval": "3s", levels: "[1s, 3s]" }));
    const db = "pitr.db";
    await create(node, db);
    const load = writeLoad(node, db);
    await waitFor(() => load.positions.length >= 60, 90_000, "60 commits under load");
    await load.stop();
    await waitForBackup(node, db);
    const out = path.join(await tempDir("restore"), "out.db");
    const configArgs = ["-name", db, "-config", node.configPath];


    const picks = [...load.positions].sort(() => Math.random() - 0.5).slice(0, 20);
    for (const [i, pos] of picks.entries()) {
      const txid = txidOf(pos);
      let args: string[];
      if (i % 2 === 0) {
        args = ["-txid", String(txid)];
      } else {
        // The commit time of that TXID, as its LTX header recorded it (the next commit is later: one process each).
        const head = Buffer.alloc(HEADER_SIZE);
        const fh = await fsp.open(path.join(node.ltxDir(db), formatLtxFilename(txid, txid)), "r");
        await fh.read(head, 0, HEADER_SIZE, 0).finally(() => undefined);
        await fh.close();
        args = ["-timestamp", new Date(decodeHeader(head).timestamp).toISOString()];
      }
      const got = await restore([...configArgs, ...args], out);
      expect(got.position, `restore ${args.join(" ")}`).toBe(pos);
      expect(got.checksum, `checksum of the file restored with ${args.join(" ")}`).toBe(pos.split("/")[1]);
    }
    // The newest state by default.
    const newest = await restore(configArgs, out);
    expect(newest.position).toBe(await node.pos(db));
    // Snapshots and compacted levels were used: far fewer objects than transactions.
    expect(newest.objects).toBeLessThan(txidOf(newest.position) / 2);
  }, 300_000);

  it("S3 down for a while: lag shows meanwhile, then the backlog ships with nothing lost or duplicated", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const node = await primary("bk-outage", s3.backupYaml("outage", { interval: "200ms" }));
    const db = "outage.db";
    await create(node, db);
    const before = await waitForBackup(node, db);
    await s3.pause();
    const load = writeLoad(node, db);
    await waitFor(async () => {
      const st = await backupStatus(node, db);
      return st !== null && st.lagMs > 2000 && st.error !== null;
    }, 30_000, "the backup lag to grow and the failure to show while S3 is down");
    expect((await scrape(node)).value("litefs_backup_lag_seconds", { db })).toBeGreaterThan(1);
    expect((await scrape(node)).value("litefs_backup_failing", { db })).toBe(1);
    expect((await backupStatus(node, db))?.position).toBe(before);
    await sleep(5000); // keeps the outage going under load (the fast suite stays short)
    await s3.resume();
    await load.stop();
    const after = await waitForBackup(node, db, 60_000);
    expect((await backupStatus(node, db))?.error).toBeNull();
    expect((await scrape(node)).value("litefs_backup_lag_seconds", { db })).toBe(0);
    const out = path.join(await tempDir("restore"), "out.db");
    const got = await restore(["-name", db, "-config", node.configPath], out);
    expect(got.position).toBe(after);
    // Every transaction from before the outage to after it is in level 0, each once.
    const l0 = (await litefs(["restore", "-name", db, "-config", node.configPath, "-txid", String(txidOf(before) + 1), "-o", out])).code;
    expect(l0).toBe(0);
  });

  it("restore rides out transient S3 errors (500 InternalError) and names the error when they persist", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const node = await primary("bk-500", s3.backupYaml("e500", { interval: "100ms" }));
    const db = "e500.db";
    await create(node, db);
    for (let i = 1; i <= 5; i++) await sqlite3(node.db(db), `INSERT INTO t VALUES (${i}, 'x');`);
    const pos = await waitForBackup(node, db);
    await node.stop();
    const proxy = await S3Proxy.start(s3);
    cleanups.push(() => proxy.close());
    const isList = (req: IncomingMessage) => req.method === "GET" && /[?&]list-type=2/.test(req.url ?? "");
    const args = ["restore", "-name", db, "-url", "s3://backups/e500", "-endpoint", proxy.endpoint];
    const env = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
    const out = path.join(await tempDir("restore"), "out.db");

    proxy.failNext(3, isList);
    const ok = await litefs([...args, "-o", out], env);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(/at position ([0-9a-f]{16}\/[0-9a-f]{16})/.exec(ok.stdout)?.[1]).toBe(pos);
    expect(proxy.failed).toBe(3);
    await fsp.rm(out);

    proxy.failNext(100, isList);
    const failed = await litefs([...args, "-o", out], env);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain("InternalError");
    expect(proxy.failed - 3).toBe(5); // every attempt of the first request, then it gave up
  });

  it("restore-if-empty: a fresh primary comes up with every database as it was backed up", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const yaml = s3.backupYaml("rie", { interval: "100ms", "restore-if-empty": "true" });
    const first = await primary("bk-rie-1", yaml);
    await create(first, "a.db");
    await create(first, "b.db", "delete");
    await sqlite3(first.db("a.db"), "INSERT INTO t VALUES (1, randomblob(5000)), (2, randomblob(70000));");
    await sqlite3(first.db("b.db"), "INSERT INTO t VALUES (7, 'x');");
    const posA = await waitForBackup(first, "a.db");
    const posB = await waitForBackup(first, "b.db");
    await first.stop();

    const fresh = await primary("bk-rie-2", yaml);
    expect(fresh.logs).toContain("restore-if-empty: database restored");
    expect(await fresh.pos("a.db")).toBe(posA);
    expect(await fresh.pos("b.db")).toBe(posB);
    expect(await sqlite3(fresh.db("a.db"), "PRAGMA integrity_check; SELECT count(*) FROM t;")).toBe("ok\n2");
    expect(await sqlite3(fresh.db("b.db"), "SELECT id FROM t;")).toBe("7");
    // It goes on as the primary: new commits continue the same chain.
    await sqlite3(fresh.db("a.db"), "INSERT INTO t VALUES (3, 'after');");
    const next = await waitForBackup(fresh, "a.db");
    expect(txidOf(next)).toBe(txidOf(posA) + 1);
    expect(fresh.logs).toContain("continuing the chain");

    // A node with data does not restore.
    await fresh.stop();
    await fresh.start();
    expect(fresh.logs).toContain("data.dir already holds databases");
  });
});

describe("continuous backup to a directory (file target)", () => {
  it("kill -9 of the primary mid-upload: after the restart the chain continues with no gap and no duplicate", async () => {
    const dir = await tempDir("backups");
    const node = await primary("bk-kill", fileBackupYaml(dir, { levels: "[1s, 2s]" }));
    const db = "kill.db";
    await create(node, db);
    const load = writeLoad(node, db);
    await waitFor(() => load.positions.length >= 20, 60_000, "commits");
    await node.kill9();
    await load.stop();
    await node.start();
    const load2 = writeLoad(node, db);
    await waitFor(() => load2.positions.length >= 10, 60_000, "commits after the restart");
    await load2.stop();
    const pos = await waitForBackup(node, db);
    expect(node.logs).toContain("continuing the chain");
    // Level 1 compacts once a second: on a fast machine the load can end before its first run.
    await waitFor(async () => (await fileBackupObjects(dir, db)).some((o) => o.level === 1), 30_000, "a level-1 compaction");
    const objects = await fileBackupObjects(dir, db);
    expectUnbrokenChain(objects, 0, txidOf(pos));
    for (const o of objects.filter((x) => x.level === 0)) expect(o.minTxid).toBe(o.maxTxid);
    const verify = await litefs(["ltx", "verify", ...objects.map((o) => o.path)]);
    expect(verify.stderr).toBe("");
    expect(verify.code).toBe(0);
    expect(objects.some((o) => o.level === 1)).toBe(true);
  });

  it("after a failover the new primary continues the chain", async () => {
    const dir = await tempDir("backups");
    const double = await consul(cleanups);
    const extraYaml = fileBackupYaml(dir);
    const a = await consulNode(cleanups, double, "node-a", { extraYaml });
    await a.start();
    await waitForPrimary([a]);
    const b = await consulNode(cleanups, double, "node-b", { extraYaml });
    await b.start();
    const db = "failover.db";
    await create(a, db);
    for (let i = 1; i <= 10; i++) await sqlite3(a.db(db), `INSERT INTO t VALUES (${i}, randomblob(1000));`);
    const shipped = await waitForBackup(a, db);
    await waitFor(async () => (await b.pos(db).catch(() => "")) === shipped, 30_000, "node-b to catch up");
    expect(await backupStatus(b, db)).toBeNull(); // a replica ships nothing
    await a.kill9();
    double.advance(11_000);
    expect(await waitForPrimary([b], 30_000)).toBe(b);
    for (let i = 11; i <= 20; i++) await sqlite3(b.db(db), `INSERT INTO t VALUES (${i}, randomblob(1000));`);
    const pos = await waitForBackup(b, db);
    expect(b.logs).toContain("continuing the chain");
    expectUnbrokenChain(await fileBackupObjects(dir, db), 0, txidOf(pos));
    const out = path.join(await tempDir("restore"), "out.db");
    expect((await restore(["-name", db, "-url", `file://${dir}`], out)).position).toBe(pos);
  });

  it("restore names a missing or damaged object, and refuses bad flags and unreachable storage", async () => {
    const dir = await tempDir("backups");
    const node = await primary("bk-errors", fileBackupYaml(dir, { levels: "[1h]" }));
    const db = "e.db";
    await create(node, db);
    for (let i = 1; i <= 5; i++) await sqlite3(node.db(db), `INSERT INTO t VALUES (${i}, 'x');`);
    await waitForBackup(node, db);
    await node.stop();
    const out = path.join(await tempDir("restore"), "out.db");
    const url = `file://${dir}`;
    const objects = await fileBackupObjects(dir, db);
    const l0 = objects.filter((o) => o.level === 0);

    // Damaged: one byte flipped in the middle of a file.
    const victim = l0[3]!;
    const bytes = await fsp.readFile(victim.path);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fsp.writeFile(victim.path, bytes);
    let r = await litefs(["restore", "-name", db, "-url", url, "-o", out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(path.basename(victim.path));
    expect(r.stderr).toMatch(/damaged object/);
    await expect(fsp.stat(out)).rejects.toThrow();

    // Missing: the file removed leaves a gap the message names.
    await fsp.rm(victim.path);
    r = await litefs(["restore", "-name", db, "-url", url, "-o", out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no object starts at TXID ${victim.minTxid.toString(16).padStart(16, "0")}`);
    // Before the gap is still restorable.
    expect((await restore(["-name", db, "-url", url, "-txid", String(victim.minTxid - 1)], out)).position).toBe(`${(victim.minTxid - 1).toString(16).padStart(16, "0")}/${l0[2]!.post}`);

    for (const [args, says] of [
      [["-txid", "abc"], "expected a TXID"],
      [["-timestamp", "yesterday"], "expected an RFC 3339 time"],
      [["-txid", "1", "-timestamp", "2026-01-01T00:00:00Z"], "not both"],
      [["-timestamp", "2000-01-01T00:00:00Z"], "holds nothing committed at or before 2000-01-01"],
    ] as const) {
      r = await litefs(["restore", "-name", db, "-url", url, "-o", out, ...args]);
      expect(r.code, args.join(" ")).not.toBe(0);
      expect(r.stderr, args.join(" ")).toContain(says);
    }
    r = await litefs(["restore", "-name", "nope.db", "-url", url, "-o", out]);
    expect(r.stderr).toContain(`holds no backup of database "nope.db" (it holds: ${db})`);
    r = await litefs(["restore", "-name", db, "-url", "s3://backups/x", "-endpoint", `http://127.0.0.1:${await freePort()}`, "-o", out], {
      ...process.env,
      AWS_ACCESS_KEY_ID: "x",
      AWS_SECRET_ACCESS_KEY: "y",
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/s3:\/\/backups\/x \(endpoint http:\/\/127\.0\.0\.1:\d+\): list e\.db failed: .*ECONNREFUSED/);
  });
});
