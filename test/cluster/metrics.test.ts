import * as fsp from "node:fs/promises";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { encodeLtxFrameHeader, encodeReadyFrame } from "../../src/http/frames.js";
import { CHECKSUM_FLAG, Position, databaseChecksum, encodeLtx, type LtxHeader } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import type { Cleanups } from "../support/consul-nodes.js";
import { LitefsNode, ROOT, freePort, makeTempDir, waitFor } from "../support/node-process.js";
import { metricNamesIn, scrape, type Scrape } from "../support/prometheus.js";
import { apiUrl, waitForPrimary } from "../support/roles.js";
import { sqlite3 } from "../support/sqlite-clients.js";

/**
 * GET /metrics as Prometheus scrapes it (docs/metrics.md): LiteFS's metric names, the latency
 * histograms, the replication counters, and the Grafana dashboard built on them.
 */

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const COMMIT_LATENCY = "litefs_db_commit_latency_seconds";
const txidOf = async (node: LitefsNode, db: string) => Position.parse(await node.pos(db)).txid;

/** A node's log output with log.format json: one object per line (a line that is not JSON fails the test). */
function jsonLines(logs: string): Array<Record<string, unknown>> {
  return logs
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON log line: ${line}`);
      }
    });
}

/** Scrapes `node` until `check` holds for the scrape; returns that scrape. */
async function scrapeUntil(node: LitefsNode, check: (s: Scrape) => boolean, what: string): Promise<Scrape> {
  let last: Scrape | null = null;
  await waitFor(async () => check((last = await scrape(node))), 20_000, what);
  return last!;
}

describe("GET /metrics", () => {
  it("is Prometheus text with LiteFS's names; litefs_db_txid follows writes; the commit-latency histogram counts every commit", async () => {
    const token = "metrics-secret";
    const cluster = await Cluster.start("metrics", 1, { primary: { token }, replica: { token } });
    cleanups.push(() => cluster.cleanup());
    const { primary } = cluster;
    const [replica] = cluster.replicas;

    // The same bearer token as every other endpoint.
    const anonymous = await request(`${apiUrl(primary)}/metrics`);
    expect(anonymous.statusCode).toBe(401);
    await anonymous.body.text();

    // WAL commits, rollback-journal commits, and a drop: every one a local commit on the primary.
    await sqlite3(primary.db("wal.db"), "PRAGMA journal_mode=WAL; CREATE TABLE t (v); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);");
    await sqlite3(primary.db("delete.db"), "CREATE TABLE t (v); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (3);");
    await sqlite3(primary.db("gone.db"), "CREATE TABLE t (v);");
    await cluster.waitForConvergence("gone.db");
    await fsp.unlink(primary.db("gone.db"));
    for (const name of ["wal.db", "delete.db", "gone.db"]) await cluster.waitForConvergence(name);
    const txids = { "wal.db": await txidOf(primary, "wal.db"), "delete.db": await txidOf(primary, "delete.db"), "gone.db": 2 };

    const p = await scrapeUntil(primary, (s) => s.value("litefs_replica_lag_seconds", { replica: "replica0" }) === 0, "the replica to have been sent everything");
    expect(p.value("litefs_is_primary")).toBe(1);
    expect(p.value("litefs_db_count")).toBe(2);
    expect(p.value("litefs_subscriber_count")).toBe(1);
    expect(p.value("litefs_lag_seconds")).toBe(0);
    for (const [db, txid] of Object.entries(txids)) {
      expect(p.family("litefs_db_txid").type).toBe("gauge");
      expect(p.value("litefs_db_txid", { db }), db).toBe(txid);
      expect(p.family("litefs_db_commit_count").type).toBe("counter");
      expect(p.value("litefs_db_commit_count", { db }), db).toBe(txid);
      expect(p.family(COMMIT_LATENCY).type).toBe("histogram");
      expect(p.histogramCount(COMMIT_LATENCY, { db }), db).toBe(txid);
      expect(p.value("litefs_db_ltx_count", { db }), db).toBeGreaterThanOrEqual(1);
      expect(p.value("litefs_db_ltx_bytes", { db }), db).toBeGreaterThan(0);
      expect(p.value("litefs_db_ltx_reap_count", { db }), db).toBe(0);
      expect(p.value("litefs_db_lag_seconds", { db }), db).toBe(0);
    }
    expect(p.value("litefs_db_wal_write_count", { db: "wal.db" })).toBeGreaterThan(0);
    expect(p.value("litefs_db_journal_write_count", { db: "delete.db" })).toBeGreaterThan(0);
    expect(p.value("litefs_db_database_write_count", { db: "delete.db" })).toBeGreaterThan(0);
    expect(p.value("litefs_db_shm_write_count", { db: "wal.db" })).toBeGreaterThan(0);
    for (const op of ["getattr", "create", "write", "unlink"]) expect(p.histogramCount("litefs_fuse_request_duration_seconds", { op }), op).toBeGreaterThan(0);
    for (const name of ["litefs_snapshots_sent_total", "litefs_snapshots_received_total", "litefs_stream_reconnects_total", "litefs_checksum_mismatches_total"]) {
      expect(p.family(name).type).toBe("counter");
    }
    // Node's process metrics, under their usual names.
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes"]) p.family(name);

    // The replica holds the same TXIDs, committed none itself, and says how late each file arrived.
    const r = await scrape(replica);
    expect(r.value("litefs_is_primary")).toBe(0);
    expect(r.value("litefs_subscriber_count")).toBe(0);
    for (const [db, txid] of Object.entries(txids)) {
      expect(r.value("litefs_db_txid", { db }), db).toBe(txid);
      expect(r.value("litefs_db_commit_count", { db }), db).toBe(0);
      expect(r.histogramCount(COMMIT_LATENCY, { db }), db).toBe(0);
      expect(r.value("litefs_db_lag_seconds", { db }), db).toBeGreaterThanOrEqual(0);
    }

    // One more commit: the TXID moves on both nodes, and the histogram counts it.
    await sqlite3(primary.db("wal.db"), "INSERT INTO t VALUES (3);");
    const want = txids["wal.db"] + 1;
    const after = await scrapeUntil(primary, (s) => s.value("litefs_db_txid", { db: "wal.db" }) === want, `primary TXID ${want}`);
    expect(after.value("litefs_db_commit_count", { db: "wal.db" })).toBe(want);
    expect(after.histogramCount(COMMIT_LATENCY, { db: "wal.db" })).toBe(want);
    await scrapeUntil(replica, (s) => s.value("litefs_db_txid", { db: "wal.db" }) === want, `replica TXID ${want}`);
    // Requests to the API are timed by route (the scrapes above, the refused one included).
    expect(after.histogramCount("litefs_http_request_duration_seconds", { route: "GET /metrics" })).toBeGreaterThanOrEqual(2);
  });

  it("counts retention, snapshots and reconnects, and logs each as one line naming the database and TXID, in JSON or text", async () => {
    const cluster = await Cluster.start("metrics-snap", 0, {
      primary: { retention: "500ms", retentionMonitorInterval: "100ms", extraYaml: "log:\n  format: json" },
    });
    cleanups.push(() => cluster.cleanup());
    const { primary } = cluster;
    const name = "snap.db";
    await sqlite3(primary.db(name), "CREATE TABLE t (v); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); INSERT INTO t VALUES (3); INSERT INTO t VALUES (4);");
    const txid = await txidOf(primary, name);
    await waitFor(async () => (await primary.ltxFiles(name)).length === 1, 10_000, "retention to leave one file");
    const reaped = await scrape(primary);
    expect(reaped.value("litefs_db_ltx_reap_count", { db: name })).toBe(txid - 1);
    expect(reaped.value("litefs_db_ltx_count", { db: name })).toBe(1);

    // A replica that joins now (text logs, the default) can only get a snapshot.
    const late = await LitefsNode.create("metrics-snap-r", { candidate: false, httpPort: await freePort(), hostname: "late", primaryUrl: primary.config.primaryUrl });
    cleanups.push(() => late.cleanup());
    await late.start();
    const both = new Cluster(primary, [late]);
    await both.waitForConvergence(name);
    expect((await scrape(primary)).value("litefs_snapshots_sent_total", { db: name })).toBe(1);
    expect((await scrape(late)).value("litefs_snapshots_received_total", { db: name })).toBe(1);

    // log.format json: every line is one JSON object; retention passes and the snapshot name the database and TXID.
    const firstRun = jsonLines(primary.logs);
    const passes = firstRun.filter((r) => r.msg === "retention removed old LTX files");
    expect(passes.length).toBeGreaterThan(0);
    for (const pass of passes) expect(pass).toMatchObject({ db: name, txid, fromTxid: expect.any(Number), toTxid: expect.any(Number) });
    expect(passes.reduce((n, r) => n + Number(r.removed), 0)).toBe(txid - 1);
    expect(firstRun.find((r) => r.msg === "sending snapshot")).toMatchObject({ db: name, txid, replica: "late" });
    // log.format text (the default): key=value after the message.
    expect(late.logs).toMatch(new RegExp(`^INFO snapshot received from the primary and applied db=snap\\.db txid=${txid}\\b`, "m"));

    // The primary goes away and comes back: the replica's stream reconnects; the role line names every TXID.
    await primary.stop();
    await primary.start();
    await waitForPrimary([primary]);
    expect(jsonLines(primary.logs).find((r) => r.msg === "this node is now the primary")).toMatchObject({ role: "primary", txids: { [name]: txid } });
    await sqlite3(primary.db(name), "INSERT INTO t VALUES (5);");
    await both.waitForConvergence(name);
    expect((await scrape(late)).value("litefs_stream_reconnects_total")).toBeGreaterThanOrEqual(1);
  });
});

/**
 * A stand-in primary that streams database `name` as TXID 1 (a good snapshot of `image`) and
 * TXID 2, whose trailer claims a checksum its pages cannot give: every file checks out on its
 * own (header, CRC), only the replica's checksum arithmetic can catch it.
 */
async function primaryWithABadFile(name: string, image: Buffer, pageSize: number): Promise<{ url: string; close: () => Promise<void> }> {
  const header = (txid: number, pre: bigint): LtxHeader => ({
    flags: 0,
    pageSize,
    commit: image.length / pageSize,
    minTxid: txid,
    maxTxid: txid,
    timestamp: Date.now(),
    preApplyChecksum: pre,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 1n,
  });
  const pages = (from: number) => Array.from({ length: image.length / pageSize - from + 1 }, (_, i) => ({ pgno: from + i, data: image.subarray((from + i - 1) * pageSize, (from + i) * pageSize) }));
  const good = databaseChecksum(image, pageSize);
  const first = encodeLtx(header(1, 0n), pages(1), good);
  const bad = encodeLtx(header(2, good), pages(2), CHECKSUM_FLAG | (good ^ 0x5a5an));
  const frame = (ltx: Uint8Array) => Buffer.concat([encodeLtxFrameHeader(name, ltx.length), ltx]);
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const have = (JSON.parse(body) as { positions: Record<string, string> }).positions[name];
      res.writeHead(200, { "content-type": "application/vnd.litefs.stream", "litefs-cluster-id": "", "litefs-primary-hostname": "forger" });
      res.write(have ? frame(bad) : Buffer.concat([frame(first), encodeReadyFrame(), frame(bad)]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe("a file that does not match its checksum", () => {
  it("is refused, counted, and logged with its database and TXID; the replica keeps its last good state and reconnects", async () => {
    const scratch = await makeTempDir("metrics-forged");
    cleanups.push(() => fsp.rm(scratch, { recursive: true, force: true }));
    await sqlite3(path.join(scratch, "src.db"), "PRAGMA page_size=4096; CREATE TABLE t (v); INSERT INTO t VALUES (1);");
    const image = await fsp.readFile(path.join(scratch, "src.db"));
    const name = "forged.db";
    const forger = await primaryWithABadFile(name, image, 4096);
    cleanups.push(() => forger.close());
    const replica = await LitefsNode.create("metrics-forged-r", { candidate: false, httpPort: await freePort(), hostname: "victim", primaryUrl: forger.url });
    cleanups.push(() => replica.cleanup());
    await replica.start();

    const s = await scrapeUntil(replica, (m) => m.value("litefs_checksum_mismatches_total", { db: name }) >= 2, "two checksum mismatches");
    expect(s.value("litefs_db_txid", { db: name })).toBe(1);
    expect(s.value("litefs_stream_reconnects_total")).toBeGreaterThanOrEqual(1);
    expect(Position.parse(await replica.pos(name))).toEqual(new Position(1, databaseChecksum(image, 4096)));
    expect(replica.logs).toMatch(new RegExp(`WARN replication stream ended with an error; reconnecting .*code=STORE_CHECKSUM_MISMATCH db=forged\\.db txid=1\\b`));
  });
});

interface GrafanaTarget {
  expr: string;
  refId: string;
  datasource?: { uid?: string };
}
interface GrafanaPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: GrafanaTarget[];
}
interface GrafanaDashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: GrafanaPanel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string }> };
}

describe("the Grafana dashboard (deploy/grafana/litefs.json)", () => {
  it("parses, and every query names a metric a running node exports", async () => {
    const dashboard = JSON.parse(await fsp.readFile(path.join(ROOT, "deploy/grafana/litefs.json"), "utf8")) as GrafanaDashboard;
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.uid).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const source = dashboard.templating.list.find((v) => v.type === "datasource");
    expect(source).toMatchObject({ name: "datasource", query: "prometheus" });

    // Every metric a query selects, with where it is used.
    const used = new Map<string, string>();
    const ids = new Set<number>();
    for (const panel of dashboard.panels) {
      expect(ids.has(panel.id), `panel id ${panel.id} unique`).toBe(false);
      ids.add(panel.id);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type === "row") continue;
      expect(panel.datasource?.uid, panel.title).toBe("${datasource}");
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      expect(new Set(panel.targets!.map((t) => t.refId)).size, `${panel.title}: refIds`).toBe(panel.targets!.length);
      for (const target of panel.targets!) {
        const names = metricNamesIn(target.expr);
        expect(names.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0);
        for (const n of names) used.set(n, `${panel.title}: ${target.expr}`);
      }
    }
    for (const variable of dashboard.templating.list) {
      const m = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(variable.definition ?? "");
      if (m) used.set(m[1], `variable ${variable.name}`);
    }

    // One node, one database: every family exists (a labelled one with no series yet still says HELP and TYPE).
    const node = await LitefsNode.create("dashboard", { httpPort: await freePort(), hostname: "solo" });
    cleanups.push(() => node.cleanup());
    await node.start();
    await sqlite3(node.db("d.db"), "CREATE TABLE t (v);");
    const exported = await scrape(node);
    for (const [name, where] of used) {
      const suffix = /_(bucket|sum|count)$/.exec(name);
      const family = exported.families.get(name) ?? (suffix ? exported.families.get(name.slice(0, -suffix[0].length)) : undefined);
      expect(family, `${name} (${where}) is not exported`).toBeDefined();
      if (family!.name !== name) expect(family!.type, `${name} (${where}) belongs to a histogram`).toBe("histogram");
    }
    // The dashboard covers what operators look at first.
    for (const name of ["litefs_is_primary", "litefs_db_txid", "litefs_lag_seconds", "litefs_db_commit_count", "litefs_db_commit_latency_seconds_bucket", "litefs_fuse_request_duration_seconds_bucket"]) {
      expect(used.has(name), name).toBe(true);
    }
  });
});
