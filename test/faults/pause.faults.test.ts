import * as fsp from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../support/cluster.js";
import { consul, consulNode } from "../support/consul-nodes.js";
import { ScenarioTally } from "../support/fault-report.js";
import { LedgerClient, checkHistory, createLedger, ledgerDir, readHistory } from "../support/history.js";
import { waitFor, type LitefsNode } from "../support/node-process.js";
import { info, waitForPrimary } from "../support/roles.js";
import { caughtUp } from "./crash-scenarios.js";

/**
 * SIGSTOP of the primary for longer than its lease TTL (Jepsen's "pause"), with a Consul lease
 * (the double, 10 s TTL, 1 s lock-delay): the other candidate takes over meanwhile. When the
 * paused node resumes, the requests its app queued during the pause reach it before any of its
 * timers run: it must refuse them (its lease is gone by the clock), turn replica, and converge.
 * Every node runs an app that writes only through its own mount, so the resumed node's app keeps
 * trying. The resumed node must capture no commit after the resume: its last capture's time,
 * which it logs when it stops being primary, must be before the SIGCONT. Transfers acknowledged
 * just before the pause and not yet streamed are asynchronous replication's window, counted in
 * the report (and none may be lost with sync-replicas 1). Their acknowledgement can reach the
 * app only after the resume: decided under the lease, its answer was still on its way from the
 * daemon to the kernel when SIGSTOP came. So an acknowledgement seen after the resume counts as a
 * write after the resume only if the node captured a commit after it.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

const ITERATIONS = Number(process.env.LITEFS_PAUSE_ITERATIONS ?? 3);
const DB = "ledger.db";

async function dump(nodes: LitefsNode[], err: Error): Promise<never> {
  const tails = nodes.map((n) => `--- ${n.config.hostname}:\n${n.logs.slice(-4000)}`);
  throw new Error(`${err.message}\n${tails.join("\n")}`);
}

/** Synchronous replication closes the asynchronous window too: then no acknowledged transfer may be lost at all. */
const CASES = [
  { journalMode: "delete", sync: false },
  { journalMode: "wal", sync: false },
  { journalMode: "wal", sync: true },
] as const;

describe("a primary paused past its lease TTL", () => {
  for (const { journalMode, sync } of CASES) {
    const label = `${journalMode}${sync ? ", sync-replicas 1" : ""}`;
    it(`never acknowledges a write after it resumes without the lease, and rejoins as a replica (${label})`, async () => {
      const tally = new ScenarioTally(`SIGSTOP primary past its TTL (${label})`);
      const double = await consul(cleanups);
      const extraYaml = sync ? "replication:\n  sync-replicas: 1\n" : undefined;
      const a = await consulNode(cleanups, double, "node-a", { extraYaml });
      await a.start();
      await waitForPrimary([a]);
      const b = await consulNode(cleanups, double, "node-b", { extraYaml });
      await b.start();
      await createLedger(a, DB, journalMode);
      await caughtUp(a, b, DB);
      const dir = await ledgerDir();
      cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
      const apps = new Map<LitefsNode, LedgerClient>();
      for (const n of [a, b]) {
        const app = await LedgerClient.start(`app-${n.config.hostname}`, [n.db(DB)], { dir });
        cleanups.push(() => app.stop());
        apps.set(n, app);
      }
      // Transfers acknowledged after a resume in which the node captured a commit: none may be missing afterwards.
      const ackedAfterResume: string[] = [];
      // Commits the resumed node captured after its SIGCONT: must stay 0.
      const capturedAfterResume: string[] = [];
      let refusedAfterResume = 0;
      // Acknowledgements that reached the app after the resume, of commits captured before the pause.
      let deliveredLate = 0;
      let primary = a;
      let other = b;
      for (let i = 0; i < ITERATIONS; i++) {
        const app = apps.get(primary)!;
        const before = app.acked.length;
        await waitFor(() => app.acked.length > before + 10, 30_000, `${primary.config.hostname}'s app to commit`).catch((err) => dump([primary, other], err));
        const logFrom = primary.logs.length;
        primary.proc!.kill("SIGSTOP");
        tally.faults++;
        const pausedAt = performance.now();
        try {
          // TTL (10 s) + lock-delay (1 s) after the last renewal, then the other candidate acquires.
          await waitForPrimary([other], 60_000).catch((err) => dump([other], err));
        } finally {
          const ackedAtResume = app.acked.length;
          const errorsAtResume = app.errors.length;
          const resumedAt = Date.now();
          primary.proc!.kill("SIGCONT");
          // Its app's queued and later writes: refused until (and after) it is a replica.
          await waitFor(
            async () => {
              const st = await info(primary).catch(() => null);
              return st?.role === "replica" && st.primary === other.config.hostname;
            },
            30_000,
            `${primary.config.hostname} to follow ${other.config.hostname} after it resumed`,
          ).catch((err) => dump([primary, other], err));
          const otherApp = apps.get(other)!;
          const otherAcked = otherApp.acked.length;
          await waitFor(() => otherApp.acked.length > otherAcked + 5, 30_000, `the new primary ${other.config.hostname} to acknowledge`).catch((err) =>
            dump([primary, other], err),
          );
          await caughtUp(other, primary, DB);
          // Its app committed before the pause, so the demotion names its last capture.
          const demoted = /this node is now a replica[^\n]*lastLocalCommitAt=(\d+)/.exec(primary.logs.slice(logFrom));
          expect(demoted, `${primary.config.hostname} logs its last capture when it turns replica`).not.toBeNull();
          const lastCapture = Number(demoted![1]);
          if (lastCapture >= resumedAt) {
            capturedAfterResume.push(`${primary.config.hostname}: a commit captured at ${lastCapture}, ${lastCapture - resumedAt} ms after the resume`);
            ackedAfterResume.push(...app.acked.slice(ackedAtResume));
          } else {
            deliveredLate += app.acked.length - ackedAtResume;
          }
          if (app.errors.length > errorsAtResume) refusedAfterResume++;
        }
        // The lease ran out while the process slept: it says so once it looks at the clock.
        expect(primary.logs.slice(logFrom)).toMatch(/no longer the primary/);
        tally.recovered(performance.now() - pausedAt);
        tally.iterations++;
        [primary, other] = [other, primary];
      }
      for (const app of apps.values()) await app.stop();
      const cluster = new Cluster(primary, [other]);
      await cluster.waitForConvergence(DB, 60_000);
      const verdict = await checkHistory(primary, [other], DB, [...apps.values()], { asyncWindow: !sync });
      const surviving = new Set((await readHistory(primary, DB)).ids);
      const lostAfterResume = ackedAfterResume.filter((id) => !surviving.has(id));
      tally.acked = verdict.acked;
      tally.lost = verdict.lost.length;
      await tally.report(
        `${verdict.rows} transfers; acknowledged after a resume: ${ackedAfterResume.length}, lost of those: ${lostAfterResume.length}; ` +
          `captured before the pause, acknowledgement delivered after the resume: ${deliveredLate}; ` +
          `lost before a pause (async window): ${verdict.lost.length - lostAfterResume.length}; resumes where the app saw its writes refused: ${refusedAfterResume}`,
      );
      expect(capturedAfterResume, "commits captured by a resumed primary without its lease").toEqual([]);
      expect(lostAfterResume, "transfers acknowledged by a resumed primary without its lease").toEqual([]);
      expect(verdict.acked).toBeGreaterThan(ITERATIONS * 20);
    });
  }
});
