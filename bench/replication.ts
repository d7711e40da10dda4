/**
 * Replication benchmark (issue 4, "Speed"), in one run:
 *
 *  (a) lag: a writer commits single-row transactions on the primary at a steady 200 tx/s
 *      (better-sqlite3, WAL, synchronous=NORMAL) and records when each commit returned; a watcher
 *      per replica keeps one read-only SQLite connection open on the replica's mount and polls
 *      `max(id)` every millisecond, recording when each transaction became visible there.
 *      Lag = visible - committed, p50/p99 over the measured transactions.
 *  (b) catch-up: one replica is stopped, the primary commits 50,000 small transactions, the
 *      replica is started again; timed from its start until its `<db>-pos` equals the primary's.
 *
 *   npm run bench:replication                 (builds, then runs dist/bench/replication.js)
 *   node dist/bench/replication.js --quick    (a tenth of the work, for a smoke test)
 *   node dist/bench/replication.js --lag-tx 2000 --catchup-tx 50000 --rate 200 --keep
 *
 * Three real `litefs mount` processes on loopback (static lease; each with its own data dir,
 * mount and port; bench/support/cluster-node.ts). A missed target is reported, never fatal: the
 * exit code is 0 unless the benchmark itself could not run.
 */
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import type { Worker } from "node:worker_threads";

import { startCluster, type ClusterNode } from "./support/cluster-node.js";
import { forceUnmount, sleep } from "./support/daemon.js";
import { nowMs, runJob, type JobResult } from "./support/replication-workers.js";
import { parseBenchArgs } from "./support/args.js";
import { isMain, type BenchRow } from "./support/report.js";

export interface ReplicationArgs {
  lagTx: number;
  warmupTx: number;
  rate: number;
  catchupTx: number;
  keep: boolean;
}

export function parseReplicationArgs(argv: string[]): ReplicationArgs {
  return parseBenchArgs<ReplicationArgs>(argv, {
    defaults: { lagTx: 2000, warmupTx: 200, rate: 200, catchupTx: 50_000, keep: false },
    quick: { lagTx: 400, warmupTx: 50, catchupTx: 5000 },
    numbers: { "--lag-tx": "lagTx", "--rate": "rate", "--catchup-tx": "catchupTx" },
  });
}

const DB = "bench.db";
const LAG_P99_TARGET_MS = 100;
const CATCHUP_TARGET_TPS = 2000;

/** Worker threads running right now (terminated on Ctrl-C). */
let workers = new Set<Worker>();
function job(j: Parameters<typeof runJob>[0]): Promise<JobResult> {
  let current: Worker | null = null;
  return runJob(j, (w) => {
    if (current) workers.delete(current);
    current = w;
    if (w) workers.add(w);
  });
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");

async function waitForPos(node: ClusterNode, want: string, timeoutMs: number, pollMs = 10): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await node.pos(DB)) === want) return nowMs();
    await sleep(pollMs);
  }
  throw new Error(`${node.opts.hostname} did not reach ${want} within ${timeoutMs} ms (at ${await node.pos(DB)})`);
}

export interface LagResult {
  perReplica: Array<{ name: string; sorted: number[]; missing: number; polls: number; errors: string[] }>;
  writeMs: number;
  achievedRate: number;
}

async function measureLag(primary: ClusterNode, replicas: ClusterNode[], firstId: number, args: ReplicationArgs): Promise<LagResult> {
  const total = args.warmupTx + args.lagTx;
  const stop = new SharedArrayBuffer(4);
  const watches = replicas.map((r) => job({ kind: "watch", db: r.db(DB), firstId, count: total, pollMs: 1, stop }));
  await sleep(300); // watchers open their connections
  const writer = await job({ kind: "paced", db: primary.db(DB), firstId, count: total, rate: args.rate });
  const want = (await primary.pos(DB))!;
  for (const r of replicas) await waitForPos(r, want, 60_000).catch((err) => console.error(String(err)));
  await sleep(100);
  const flag = new Int32Array(stop);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
  const seen = await Promise.all(watches);
  const commits = writer.times!;
  return {
    writeMs: writer.value,
    achievedRate: (total * 1000) / writer.value,
    perReplica: replicas.map((r, k) => {
      const times = seen[k].times!;
      const lags: number[] = [];
      let missing = 0;
      for (let i = args.warmupTx; i < total; i++) {
        if (Number.isNaN(times[i])) missing++;
        else lags.push(times[i] - commits[i]);
      }
      lags.sort((a, b) => a - b);
      return { name: r.opts.hostname, sorted: lags, missing, polls: seen[k].polls ?? 0, errors: seen[k].errors ?? [] };
    }),
  };
}

export interface CatchupResult {
  behind: number;
  primaryWriteMs: number;
  liveReplicaExtraMs: number;
  startToMountMs: number;
  startToCaughtUpMs: number;
  snapshot: boolean;
}

async function measureCatchup(primary: ClusterNode, live: ClusterNode, late: ClusterNode, firstId: number, count: number): Promise<CatchupResult> {
  const before = await primary.pos(DB);
  await late.stop();
  const burst = await job({ kind: "burst", db: primary.db(DB), firstId, count });
  const want = (await primary.pos(DB))!;
  const behind = parseInt(want.split("/")[0], 16) - parseInt((before ?? "0").split("/")[0], 16);
  const burstEnd = nowMs();
  // The replica that stayed connected, for comparison: how long after the last commit it matched.
  const liveDone = await waitForPos(live, want, 300_000).catch(() => NaN);
  const primaryLogBefore = primary.logSize();
  const t0 = nowMs();
  await late.start(120_000);
  const mounted = nowMs();
  const done = await waitForPos(late, want, 600_000, 5);
  const snapshot = /sending snapshot/.test(await primary.logSince(primaryLogBefore));
  return {
    behind,
    primaryWriteMs: burst.value,
    liveReplicaExtraMs: liveDone - burstEnd,
    startToMountMs: mounted - t0,
    startToCaughtUpMs: done - t0,
    snapshot,
  };
}

function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ") + " |";
  const sep = "|" + widths.map((w, i) => (right[i] ? "-".repeat(w + 1) + ":" : ":" + "-".repeat(w + 1))).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

export interface ReplicationBenchResult {
  lag: LagResult | null;
  catchup: CatchupResult | null;
  problems: string[];
  seconds: number;
}

/** Runs (a) and (b) on a fresh cluster and returns what was measured; Ctrl-C stops the daemons and exits 130. */
export async function runReplicationBench(args: ReplicationArgs): Promise<ReplicationBenchResult> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-repl-"));
  const nodes: ClusterNode[] = [];
  let interrupted = false;
  const cleanup = async () => {
    for (const w of workers) await w.terminate().catch(() => undefined);
    workers = new Set();
    for (const n of nodes) await n.stop().catch(() => forceUnmount(n.mnt));
    if (!args.keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
    else console.log(`kept ${root}`);
  };
  const onSigint = () => {
    interrupted = true;
    console.error("interrupted: stopping the daemons");
    cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSigint);

  const started = Date.now();
  let lag: LagResult | null = null;
  let catchup: CatchupResult | null = null;
  const problems: string[] = [];
  try {
    console.log(`cluster: primary + 2 replicas under ${root}`);
    const { primary, replicas } = await startCluster(root, 2);
    nodes.push(primary, ...replicas);
    const setup = await job({ kind: "setup", db: primary.db(DB) });
    const want = (await primary.pos(DB))!;
    for (const r of replicas) await waitForPos(r, want, 60_000);
    let nextId = setup.value + 1;

    console.log(`(a) lag: ${args.warmupTx} warm-up + ${args.lagTx} measured transactions at ${args.rate} tx/s`);
    try {
      lag = await measureLag(primary, replicas, nextId, args);
    } catch (err) {
      problems.push(`lag: ${(err as Error).message}`);
    }
    nextId += args.warmupTx + args.lagTx;

    if (!interrupted) {
      console.log(`(b) catch-up: ${replicas[1].opts.hostname} stopped while the primary commits ${args.catchupTx} transactions`);
      try {
        catchup = await measureCatchup(primary, replicas[0], replicas[1], nextId, args.catchupTx);
      } catch (err) {
        problems.push(`catch-up: ${(err as Error).message}`);
      }
    }
  } catch (err) {
    problems.push(`setup: ${(err as Error).message}`);
  } finally {
    if (!interrupted) await cleanup();
    process.off("SIGINT", onSigint);
  }
  return { lag, catchup, problems, seconds: (Date.now() - started) / 1000 };
}

/** The rows of `npm run bench`: lag per replica, catch-up, and the primary's own rate for reference. */
export function replicationRows(r: ReplicationBenchResult): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const rep of r.lag?.perReplica ?? []) {
    const p50 = percentile(rep.sorted, 50);
    const p99 = percentile(rep.sorted, 99);
    rows.push({
      group: "replication",
      key: `replication.lag.${rep.name}`,
      what: `lag, commit on the primary to visible on ${rep.name} @ ${fmtInt(r.lag!.achievedRate)} tx/s`,
      n: `${fmtInt(rep.sorted.length)} tx`,
      baseline: "-",
      litefs: `p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms`,
      ratio: null,
      note: `p99 < ${LAG_P99_TARGET_MS} ms: ${p99 < LAG_P99_TARGET_MS && rep.missing === 0 ? "PASS" : "FAIL"}`,
      values: { p50Ms: p50, p99Ms: p99, maxMs: rep.sorted.at(-1) ?? null, missing: rep.missing, rate: r.lag!.achievedRate },
    });
  }
  const c = r.catchup;
  if (c) {
    const tps = (c.behind * 1000) / c.startToCaughtUpMs;
    rows.push({
      group: "replication",
      key: "replication.catchup",
      what: `catch-up of a restarted replica ${fmtInt(c.behind)} tx behind (primary writing them: baseline)`,
      n: `${fmtInt(c.behind)} tx`,
      baseline: `${fmt(c.primaryWriteMs / 1000, 2)} s (${fmtInt((c.behind * 1000) / c.primaryWriteMs)} tx/s)`,
      litefs: `${fmt(c.startToCaughtUpMs / 1000, 2)} s (${fmtInt(tps)} tx/s)`,
      ratio: c.startToCaughtUpMs / c.primaryWriteMs,
      note: `> ${fmtInt(CATCHUP_TARGET_TPS)} tx/s: ${tps >= CATCHUP_TARGET_TPS && !c.snapshot ? "PASS" : "FAIL"}${c.snapshot ? " (snapshot sent)" : ""}`,
      values: { behind: c.behind, startToCaughtUpMs: c.startToCaughtUpMs, startToMountMs: c.startToMountMs, primaryWriteMs: c.primaryWriteMs, liveReplicaExtraMs: c.liveReplicaExtraMs, snapshot: c.snapshot },
    });
  }
  return rows;
}

function report(result: ReplicationBenchResult): void {
  const { lag, catchup } = result;
  const problems = [...result.problems];
  console.log("");
  console.log(`Node ${process.version}, ${os.cpus().length} cores, ${os.platform()} ${os.release()}`);
  console.log("");
  const rows: string[][] = [];
  let allMet = true;
  if (lag) {
    for (const r of lag.perReplica) {
      const p50 = percentile(r.sorted, 50);
      const p99 = percentile(r.sorted, 99);
      const ok = p99 < LAG_P99_TARGET_MS && r.missing === 0;
      allMet &&= ok;
      rows.push([
        `lag to ${r.name} @ ${fmtInt(lag.achievedRate)} tx/s`,
        `${fmtInt(r.sorted.length)} tx`,
        `p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, max ${fmt(r.sorted.at(-1) ?? NaN)} ms`,
        `p99 < ${LAG_P99_TARGET_MS} ms`,
        ok ? "PASS" : "FAIL",
      ]);
      if (r.missing) problems.push(`${r.name}: ${r.missing} transactions never seen by the watcher`);
      if (r.errors.length) problems.push(`${r.name} watcher errors: ${r.errors.slice(0, 3).join("; ")}`);
    }
  }
  if (catchup) {
    const tps = (catchup.behind * 1000) / catchup.startToCaughtUpMs;
    const ok = tps >= CATCHUP_TARGET_TPS && !catchup.snapshot;
    allMet &&= ok;
    rows.push([
      `catch-up of a replica ${fmtInt(catchup.behind)} tx behind`,
      `${fmtInt(catchup.behind)} tx`,
      `${fmt(catchup.startToCaughtUpMs / 1000, 2)} s from start (mounted after ${fmt(catchup.startToMountMs / 1000, 2)} s): ${fmtInt(tps)} tx/s`,
      `> ${fmtInt(CATCHUP_TARGET_TPS)} tx/s`,
      ok ? "PASS" : "FAIL",
    ]);
    rows.push([
      "  (primary writing those, for reference)",
      `${fmtInt(catchup.behind)} tx`,
      `${fmt(catchup.primaryWriteMs / 1000, 2)} s: ${fmtInt((catchup.behind * 1000) / catchup.primaryWriteMs)} tx/s; connected replica matched ${fmt(catchup.liveReplicaExtraMs)} ms after the last commit`,
      "-",
      "-",
    ]);
    if (catchup.snapshot) problems.push("the primary sent a snapshot during catch-up: not an incremental catch-up");
  }
  console.log(table(["measurement", "n", "result", "target", "result"], rows, [false, true, false, true, true]));
  for (const p of problems) console.log(`note: ${p}`);
  if (!lag || !catchup) allMet = false;
  console.log(`\ntotal ${fmt(result.seconds, 0)} s; ${allMet ? "all targets met" : "some targets missed (see above)"}`);
}

if (isMain(import.meta.url)) {
  runReplicationBench(parseReplicationArgs(process.argv.slice(2)))
    .then(report)
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
