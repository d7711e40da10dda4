import * as fsp from "node:fs/promises";
import { expect } from "vitest";
import { Position } from "../../src/ltx/index.js";
import { Cluster } from "../support/cluster.js";
import { ScenarioTally } from "../support/fault-report.js";
import { LedgerClient, checkHistory, createLedger, ledgerDir } from "../support/history.js";
import { sleep, waitFor, type LitefsNode } from "../support/node-process.js";

/**
 * kill -9 at random moments, under a ledger write load, on a primary and a replica (static
 * lease: the killed primary comes back as primary). Shared by the fast subset (npm test) and the
 * fault suite (npm run test:faults), which differ only in iterations.
 */
export type CrashTarget = "primary" | "replica" | "both" | "mount agent";

/** The daemon's mount agent: its child running mount-agent-process.js (read from procfs, never the mount). */
export async function mountAgentPid(node: LitefsNode): Promise<number | null> {
  const pid = node.proc?.pid;
  if (!pid) return null;
  const children = (await fsp.readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean);
  for (const child of children) {
    const cmdline = await fsp.readFile(`/proc/${child}/cmdline`, "utf8").catch(() => "");
    if (cmdline.includes("mount-agent-process.js")) return Number(child);
  }
  return null;
}

async function txid(node: LitefsNode, db: string): Promise<number> {
  return Position.parse(await node.pos(db)).txid;
}

/** The replica reaches the TXID the primary has now (the load keeps running meanwhile). */
export async function caughtUp(primary: LitefsNode, replica: LitefsNode, db: string, timeoutMs = 60_000): Promise<void> {
  const want = await txid(primary, db);
  await waitFor(async () => (await txid(replica, db).catch(() => -1)) >= want, timeoutMs, `${replica.config.hostname} to reach TXID ${want}`).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${replica.config.hostname}:\n${replica.logs.slice(-12000)}\n--- ${primary.config.hostname}:\n${primary.logs.slice(-6000)}`);
  });
}

export interface CrashRun {
  target: CrashTarget;
  journalMode: "delete" | "wal";
  iterations: number;
  cleanups: Array<() => Promise<void>>;
}

export async function runCrashScenario(run: CrashRun): Promise<void> {
  const { target, journalMode, iterations } = run;
  const tally = new ScenarioTally(`kill -9 ${target} (${journalMode})`);
  const cluster = await Cluster.start(`crash-${target.replace(" ", "")}-${journalMode}`, 1);
  run.cleanups.push(() => cluster.cleanup());
  const { primary } = cluster;
  const [replica] = cluster.replicas;
  const db = "ledger.db";
  await createLedger(primary, db, journalMode);
  await caughtUp(primary, replica, db);
  const dir = await ledgerDir();
  run.cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
  const client = await LedgerClient.start("c1", [primary.db(db)], { dir });
  run.cleanups.push(() => client.stop());

  for (let i = 0; i < iterations; i++) {
    await sleep(50 + Math.random() * 600); // a random moment of the load, not a check
    const ackedBefore = client.acked.length;
    const faultAt = performance.now();
    if (target === "mount agent") {
      // The agent writes replicated pages on the replica; on the primary it repairs and locks.
      const node = i % 2 === 0 ? replica : primary;
      const pid = await mountAgentPid(node);
      if (pid) {
        process.kill(pid, "SIGKILL");
        tally.faults++;
      }
    } else {
      const victims = target === "primary" ? [primary] : target === "replica" ? [replica] : [primary, replica];
      for (const v of victims) await v.kill9();
      tally.faults += victims.length;
      for (const v of victims) await v.start();
    }
    // Recovered: the primary acknowledges writes again and the replica has caught up with them.
    await waitFor(() => client.acked.length > ackedBefore, 30_000, `writes acknowledged after iteration ${i}`).catch((err: Error) => {
      throw new Error(`${err.message}\nclient errors: ${client.errors.slice(-5).join(" | ")}\n${primary.logs.slice(-3000)}`);
    });
    await caughtUp(primary, replica, db);
    tally.recovered(performance.now() - faultAt);
    tally.iterations++;
  }
  await client.stop();
  await cluster.waitForConvergence(db, 60_000);
  const verdict = await checkHistory(primary, [replica], db, [client]);
  tally.acked = verdict.acked;
  tally.lost = verdict.lost.length;
  await tally.report(`${verdict.rows} transfers, ${verdict.unacknowledged} committed without acknowledgement`);
  expect(verdict.acked).toBeGreaterThan(iterations);
}
