import * as fsp from "node:fs/promises";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { ScenarioTally } from "../support/fault-report.js";
import { LedgerClient, checkHistory, createLedger, ledgerDir, readHistory, TOTAL } from "../support/history.js";
import { LitefsNode, freePort, waitFor, withTimeout } from "../support/node-process.js";
import { SmallDisk } from "../support/small-disk.js";
import { sqlite3Raw } from "../support/sqlite-clients.js";
import { caughtUp } from "./crash-scenarios.js";

/**
 * Full disks: a replica's data dir fills up (replication stops with a clear error, the replica
 * serves its last good state, and resumes once space is freed), and the primary's (the app's
 * write fails, nothing committed is lost, the node recovers once space is freed).
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});
beforeAll(() => SmallDisk.removeLeftovers());

const ITERATIONS = Number(process.env.LITEFS_DISK_ITERATIONS ?? 5);
const DB = "ledger.db";
/** The node's last words when a WAL commit could not be recorded (it exits 99). */
const FATAL = /exiting so recovery can repair it/;

/**
 * A static-lease pair where `onDisk` ("primary" or "replica") keeps its data dir on a 24 MiB tmpfs.
 * Short retention: with the default (10 min) every transaction's LTX file stays, and the tmpfs
 * filled by itself at about TXID 5,100 of the unpaced WAL ledger, so a slow iteration (a busy
 * machine, a restart after exit 99) ran out of disk that the test had not filled.
 */
async function pairWithSmallDisk(label: string, onDisk: "primary" | "replica"): Promise<{ cluster: Cluster; disk: SmallDisk }> {
  const primaryPort = await freePort();
  const primaryUrl = `http://127.0.0.1:${primaryPort}`;
  const retention = { retention: "5s", retentionMonitorInterval: "1s" };
  const primary = await LitefsNode.create(`${label}-p`, { candidate: true, httpPort: primaryPort, hostname: "primary", primaryUrl, ...retention });
  const replica = await LitefsNode.create(`${label}-r`, { candidate: false, httpPort: await freePort(), hostname: "replica0", primaryUrl, ...retention });
  const cluster = new Cluster(primary, [replica]);
  const disk = await SmallDisk.mount((onDisk === "primary" ? primary : replica).dataDir, 24);
  cleanups.push(() => disk.remove());
  cleanups.push(() => cluster.cleanup());
  await primary.start();
  await replica.start();
  return { cluster, disk };
}

/** That pair with the ledger created, the replica caught up, and a ledger client writing on the primary. */
async function ledgerOnSmallDisk(label: string, onDisk: "primary" | "replica", journalMode: (typeof MODES)[number]) {
  const { cluster, disk } = await pairWithSmallDisk(label, onDisk);
  const { primary } = cluster;
  const [replica] = cluster.replicas;
  await createLedger(primary, DB, journalMode);
  await caughtUp(primary, replica, DB);
  const dir = await ledgerDir();
  cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  const client = await LedgerClient.start("c1", [primary.db(DB)], { dir });
  cleanups.push(() => client.stop());
  return { cluster, disk, primary, replica, client };
}

/**
 * Both journal modes. WAL readers need the -shm, which SQLite truncates and grows again for every
 * first connection (and unlinks after the last): its backing file keeps its space
 * (src/store/shm-file.ts), so a replica on a full disk still serves its last state in WAL mode.
 */
const MODES = ["delete", "wal"] as const;

describe("full disks", () => {
  for (const journalMode of MODES) {
    it(`a replica whose disk is full keeps serving its last good state and resumes when space is freed (${journalMode})`, async () => {
      const tally = new ScenarioTally(`replica disk full (${journalMode})`);
      const { cluster, disk, primary, replica, client } = await ledgerOnSmallDisk(`fullr-${journalMode}`, "replica", journalMode);
      for (let i = 0; i < ITERATIONS; i++) {
        await disk.fill();
        tally.faults++;
        const logFrom = replica.logs.length;
        const stuckAt = await replica.pos(DB);
        // Replication stops with an error that says why, and the replica stays where it was.
        await waitFor(() => /ENOSPC|no space/i.test(replica.logs.slice(logFrom)), 30_000, "the replica to report the full disk").catch((err: Error) => {
          throw new Error(`${err.message}\n${replica.logs.slice(-3000)}`);
        });
        const acked = client.acked.length;
        await waitFor(() => client.acked.length > acked + 10, 20_000, "the primary to keep acknowledging");
        const h = await readHistory(replica, DB).catch((err: Error) => {
          throw new Error(`iteration ${i}: reading the replica on a full disk: ${err.message}\n--- replica:\n${replica.logs.slice(-4000)}`);
        });
        expect(h.integrity).toBe("ok");
        expect(h.total).toBe(TOTAL);
        expect((await replica.pos(DB)) === stuckAt || /ENOSPC|no space/i.test(replica.logs.slice(logFrom))).toBe(true);
        const freedAt = performance.now();
        await disk.free();
        await caughtUp(primary, replica, DB);
        tally.recovered(performance.now() - freedAt);
        tally.iterations++;
      }
      await client.stop();
      await cluster.waitForConvergence(DB, 60_000);
      const verdict = await checkHistory(primary, [replica], DB, [client]);
      tally.acked = verdict.acked;
      tally.lost = verdict.lost.length;
      await tally.report("recovery: space freed until caught up");
    });

    it(`a primary whose disk is full fails the app's write, loses nothing committed and recovers when space is freed (${journalMode})`, async () => {
      const tally = new ScenarioTally(`primary disk full (${journalMode})`);
      const { cluster, disk, primary, replica, client } = await ledgerOnSmallDisk(`fullp-${journalMode}`, "primary", journalMode);
      let hungExits = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        const acked = client.acked.length;
        await waitFor(() => client.acked.length > acked + 10, 20_000, "transfers before the disk fills");
        await disk.fill();
        tally.faults++;
        // A write that needs space fails (the ledger's rows are small: a blob makes sure). mode=rw:
        // if the node already exited (exit 99: the ledger's own commit could not be recorded), the
        // mount dir is bare, and a plain open would create a new database there and succeed.
        const r = await sqlite3Raw(
          `file:${primary.db(DB)}?mode=rw`,
          ".timeout 5000\nCREATE TABLE IF NOT EXISTS pad (b BLOB); INSERT INTO pad VALUES (randomblob(2000000));",
        );
        expect(r.code, `iteration ${i}: a 2 MB write on a full disk: ${r.stdout} ${r.stderr}\n--- primary:\n${primary.logs.slice(-3000)}`).not.toBe(0);
        const freedAt = performance.now();
        await disk.free();
        if (primary.proc?.exitCode !== null || FATAL.test(primary.logs)) {
          // Exit 99 (capture failed after SQLite committed): recovery on restart repairs it. The
          // exit itself may not have finished (see hungExits): kill -9 ends it either way.
          const exited = await withTimeout(primary.exit!, 10_000, "exit 99").then(
            () => true,
            () => false,
          );
          if (!exited) hungExits++;
          tally.faults++;
          await primary.kill9();
          await primary.start();
        }
        const after = client.acked.length;
        await waitFor(() => client.acked.length > after + 5, 30_000, "the primary to acknowledge again after space was freed").catch((err: Error) => {
          throw new Error(`${err.message}\nclient errors: ${client.errors.slice(-5).join(" | ")}\n${primary.logs.slice(-3000)}`);
        });
        await caughtUp(primary, replica, DB);
        tally.recovered(performance.now() - freedAt);
        tally.iterations++;
      }
      await client.stop();
      await cluster.waitForConvergence(DB, 60_000);
      const verdict = await checkHistory(primary, [replica], DB, [client]);
      tally.acked = verdict.acked;
      tally.lost = verdict.lost.length;
      await tally.report(`primary restarts: ${tally.faults - tally.iterations} (exit 99 not finished after 10 s: ${hungExits}); client errors seen: ${new Set(client.errors).size}`);
    });
  }
});
