import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { ScenarioTally } from "../support/fault-report.js";
import { FaultProxy } from "../support/fault-proxy.js";
import { scrape } from "../support/prometheus.js";
import { LedgerClient, checkHistory, createLedger, ledgerDir } from "../support/history.js";
import { LitefsNode, freePort, waitFor } from "../support/node-process.js";
import { sqlite3 } from "../support/sqlite-clients.js";
import { caughtUp } from "./crash-scenarios.js";

/**
 * Flipped bytes: in a stored LTX file, in a replica's database file, on the wire. Each must be
 * detected and reported (file name, both checksums), repaired from the primary where possible,
 * and never served silently.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const ITERATIONS = Number(process.env.LITEFS_CORRUPT_ITERATIONS ?? 10);
const DB = "ledger.db";

async function flipByte(file: string, at: number): Promise<void> {
  const fh = await fsp.open(file, "r+");
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] ^= 0xff;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

async function ledgerPair(label: string, opts: { viaProxy?: boolean } = {}): Promise<{ cluster: Cluster; proxy: FaultProxy | null; client: LedgerClient }> {
  const cluster = await Cluster.start(label, 0);
  cleanups.push(() => cluster.cleanup());
  const proxy = opts.viaProxy ? await FaultProxy.start(cluster.primary.config.httpPort!) : null;
  if (proxy) cleanups.push(() => proxy.close());
  const replica = await LitefsNode.create(`${label}-r`, {
    candidate: false,
    httpPort: await freePort(),
    hostname: "replica0",
    primaryUrl: proxy?.url ?? cluster.primary.config.primaryUrl,
  });
  cleanups.push(() => replica.cleanup());
  cluster.replicas.push(replica);
  await createLedger(cluster.primary, DB, "wal");
  // Pages no transfer ever rewrites: damage there cannot be undone by re-applying the last file.
  await sqlite3(cluster.primary.db(DB), "CREATE TABLE pad (b BLOB); INSERT INTO pad VALUES (randomblob(400000));");
  await replica.start();
  await caughtUp(cluster.primary, replica, DB);
  const dir = await ledgerDir();
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  const client = await LedgerClient.start("c1", [cluster.primary.db(DB)], { dir });
  cleanups.push(() => client.stop());
  return { cluster, proxy, client };
}

async function finish(tally: ScenarioTally, cluster: Cluster, client: LedgerClient, note: string): Promise<void> {
  await client.stop();
  await cluster.waitForConvergence(DB, 60_000);
  await cluster.expectIdenticalBytes(DB);
  const verdict = await checkHistory(cluster.primary, cluster.replicas, DB, [client]);
  tally.acked = verdict.acked;
  tally.lost = verdict.lost.length;
  await tally.report(note);
}

describe("corruption", () => {
  it("a flipped byte on the wire is detected, reported with both checksums, and never applied", async () => {
    const tally = new ScenarioTally("flipped byte on the wire");
    const { cluster, proxy, client } = await ledgerPair("corrupt-wire", { viaProxy: true });
    const [replica] = cluster.replicas;
    for (let i = 0; i < ITERATIONS; i++) {
      const logFrom = replica.logs.length;
      // The next connection carries a flipped byte somewhere in its first files.
      proxy!.inject({ corruptAt: 200 + Math.floor(Math.random() * 3000) });
      const faultAt = performance.now();
      proxy!.dropAll();
      tally.faults++;
      await caughtUp(cluster.primary, replica, DB);
      tally.recovered(performance.now() - faultAt);
      tally.iterations++;
      const said = replica.logs.slice(logFrom);
      // A flip in a frame header or page data is caught by a checksum or the decoder; either way the replica reconnected.
      if (/checksum/i.test(said)) expect(said).toMatch(/[0-9a-f]{16}.*[0-9a-f]{16}/s);
    }
    await finish(tally, cluster, client, "recovery: fault until caught up");
  });

  it("a flipped byte in a stored LTX file of the primary is caught before it reaches a replica", async () => {
    const tally = new ScenarioTally("flipped byte in a stored LTX file");
    const { cluster, client } = await ledgerPair("corrupt-ltx");
    const { primary } = cluster;
    const [replica] = cluster.replicas;
    for (let i = 0; i < Math.min(ITERATIONS, 5); i++) {
      await replica.stop();
      const acked = client.acked.length;
      await waitFor(() => client.acked.length > acked + 5, 20_000, "transfers while the replica is down");
      // The oldest file the replica will ask for: the one just after its position.
      const files = await primary.ltxFiles(DB);
      const victim = path.join(primary.ltxDir(DB), files[files.length - 3]);
      const size = (await fsp.stat(victim)).size;
      await flipByte(victim, 100 + Math.floor(Math.random() * Math.max(1, size - 200)));
      tally.faults++;
      const logFrom = primary.logs.length;
      const faultAt = performance.now();
      await replica.start();
      await caughtUp(primary, replica, DB);
      tally.recovered(performance.now() - faultAt);
      tally.iterations++;
      expect(primary.logs.slice(logFrom) + replica.logs, "the damaged file is named").toContain(path.basename(victim));
    }
    await finish(tally, cluster, client, "repaired by a snapshot from the live database");
  });

  it("a flipped byte in a replica's database file is reported with both checksums and repaired, never served", async () => {
    const tally = new ScenarioTally("flipped byte in a replica's database file");
    const { cluster, client } = await ledgerPair("corrupt-db");
    const { primary } = cluster;
    const [replica] = cluster.replicas;
    const file = path.join(replica.dataDir, "dbs", DB, "database");
    for (let i = 0; i < Math.min(ITERATIONS, 5); i++) {
      await replica.stop();
      // A page of the padding blob (pages ~6..100).
      await flipByte(file, 4096 * (10 + Math.floor(Math.random() * 80)) + 100 + Math.floor(Math.random() * 3000));
      tally.faults++;
      const faultAt = performance.now();
      await replica.start().catch(() => undefined);
      // Recovery repaired it from the stored LTX files, or set it aside to get it again from the primary (a
      // replica), or refused to start (a candidate); each names the file and both checksums.
      expect(replica.logs).toMatch(/checksum [0-9a-f]{16}.*says [0-9a-f]{16}|says [0-9a-f]{16}, the database file has [0-9a-f]{16}/);
      expect(replica.logs).toContain(file);
      if (replica.proc?.exitCode === null) {
        // Counted where operators look (a replica that can never be primary starts and resyncs instead of refusing).
        expect((await scrape(replica)).value("litefs_checksum_mismatches_total", { db: DB })).toBe(1);
      }
      if (replica.proc?.exitCode !== null) {
        // Refused, never served; the documented repair: remove the database dir, the primary resends it.
        await replica.kill9();
        await fsp.rm(path.join(replica.dataDir, "dbs", DB), { recursive: true, force: true });
        await replica.start();
      }
      await caughtUp(primary, replica, DB);
      tally.recovered(performance.now() - faultAt);
      tally.iterations++;
    }
    await finish(tally, cluster, client, "reported; repaired from the stored LTX files, or set aside and resynced from the primary");
  });
});
