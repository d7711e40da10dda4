/**
 * Synchronous replication benchmark: commit latency (p50, p99) and throughput of single-row
 * autocommit transactions (WAL, synchronous=NORMAL) on the primary, asynchronous against
 * `replication.sync-replicas: 1`, on loopback and with a round trip added between replica and
 * primary, in one run.
 *
 *   npm run bench:sync                        (builds, then runs dist/bench/sync.js)
 *   node dist/bench/sync.js --quick           (fewer commits, for a smoke test)
 *   node dist/bench/sync.js --commits 1000 --rounds 3 --rtt 30
 *
 * Four clusters of two real `litefs mount` processes (static lease; bench/support/cluster-node.ts)
 * run side by side: {async, sync} x {loopback, +RTT}. The added round trip is a userspace TCP
 * proxy (bench/support/delay-proxy.ts; the kernel has no netem) through which the replica reaches
 * the primary, for the stream and the acknowledgements alike. The commits of each configuration
 * are measured in rounds, the configurations taking turns, so a machine whose speed drifts during
 * the run slows them all alike: compare the ratios, which come from one run.
 */
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";

import { parseBenchArgs } from "./support/args.js";
import { ClusterNode, freePort } from "./support/cluster-node.js";
import { DelayProxy } from "./support/delay-proxy.js";
import { forceUnmount } from "./support/daemon.js";
import { runJob } from "./support/replication-workers.js";
import { isMain, type BenchRow } from "./support/report.js";

export interface SyncArgs {
  commits: number;
  rounds: number;
  rtt: number;
  keep: boolean;
}

const DB = "sync.db";

interface Config {
  name: string;
  sync: boolean;
  rttMs: number;
  primary: ClusterNode;
  replica: ClusterNode;
  proxy: DelayProxy | null;
  latencies: number[];
  elapsedMs: number;
  nextId: number;
}

async function startConfig(root: string, name: string, sync: boolean, rttMs: number): Promise<Config> {
  const port = await freePort();
  const primaryUrl = `http://127.0.0.1:${port}`;
  const extraYaml = sync ? ["replication:", "  sync-replicas: 1", "  sync-timeout: 30s"] : [];
  const primary = new ClusterNode(path.join(root, name, "primary"), { hostname: "primary", candidate: true, httpPort: port, primaryUrl, extraYaml });
  let proxy: DelayProxy | null = null;
  let replicaUrl = primaryUrl;
  if (rttMs > 0) {
    proxy = new DelayProxy({ host: "127.0.0.1", port }, rttMs / 2);
    replicaUrl = `http://127.0.0.1:${await proxy.listen()}`;
  }
  const replica = new ClusterNode(path.join(root, name, "replica"), { hostname: "replica", candidate: false, httpPort: await freePort(), primaryUrl: replicaUrl });
  await primary.start();
  await replica.start();
  return { name, sync, rttMs, primary, replica, proxy, latencies: [], elapsedMs: 0, nextId: 1 };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export function parseSyncArgs(argv: string[]): SyncArgs {
  return parseBenchArgs<SyncArgs>(argv, {
    defaults: { commits: 600, rounds: 3, rtt: 30, keep: false },
    quick: { commits: 60, rounds: 2 },
    numbers: { "--commits": "commits", "--rounds": "rounds", "--rtt": "rtt" },
    integers: true,
  });
}

export interface SyncConfigResult {
  name: string;
  sync: boolean;
  rttMs: number;
  commits: number;
  p50: number;
  p99: number;
  rate: number;
}

export interface SyncBenchResult {
  perRound: number;
  rounds: number;
  rtt: number;
  configs: SyncConfigResult[];
}

/** Commit latency for {async, sync} x {loopback, +RTT}, the configurations taking turns in rounds. */
export async function runSyncBench(args: SyncArgs): Promise<SyncBenchResult> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-sync-"));
  const configs: Config[] = [];
  try {
    for (const rtt of [0, args.rtt]) {
      for (const sync of [false, true]) configs.push(await startConfig(root, `${sync ? "sync" : "async"}-${rtt}ms`, sync, rtt));
    }
    for (const c of configs) {
      const setup = await runJob({ kind: "setup", db: c.primary.db(DB) });
      c.nextId = setup.value + 1;
      // Warm up: the replica joins the in-sync set with the first commits.
      await runJob({ kind: "burst", db: c.primary.db(DB), firstId: c.nextId, count: 20 });
      c.nextId += 20;
    }
    const perRound = Math.ceil(args.commits / args.rounds);
    for (let round = 0; round < args.rounds; round++) {
      // The configurations take turns, in a rotating order.
      for (let k = 0; k < configs.length; k++) {
        const c = configs[(k + round) % configs.length];
        const r = await runJob({ kind: "timed", db: c.primary.db(DB), firstId: c.nextId, count: perRound });
        c.nextId += perRound;
        c.elapsedMs += r.value;
        c.latencies.push(...Array.from(r.times!));
      }
    }
    return {
      perRound,
      rounds: args.rounds,
      rtt: args.rtt,
      configs: configs.map((c) => {
        const sorted = [...c.latencies].sort((a, b) => a - b);
        return { name: c.name, sync: c.sync, rttMs: c.rttMs, commits: c.latencies.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), rate: (c.latencies.length * 1000) / c.elapsedMs };
      }),
    };
  } finally {
    for (const c of configs) {
      await c.replica.stop().catch(() => undefined);
      await c.primary.stop().catch(() => undefined);
      await c.proxy?.close();
      await forceUnmount(c.replica.mnt).catch(() => undefined);
      await forceUnmount(c.primary.mnt).catch(() => undefined);
    }
    if (!args.keep) await fsp.rm(root, { recursive: true, force: true });
  }
}

function pair(r: SyncBenchResult, rtt: number): { a: SyncConfigResult; s: SyncConfigResult } {
  return { a: r.configs.find((c) => !c.sync && c.rttMs === rtt)!, s: r.configs.find((c) => c.sync && c.rttMs === rtt)! };
}

/** The rows of `npm run bench`: synchronous replication against asynchronous, per round trip. */
export function syncRows(r: SyncBenchResult): BenchRow[] {
  return [0, r.rtt].map((rtt) => {
    const { a, s } = pair(r, rtt);
    return {
      group: "sync",
      key: `sync.rtt${rtt}`,
      what: `commit latency, sync-replicas 1 (baseline: async), ${rtt ? `+${rtt} ms RTT` : "loopback"}`,
      n: `${s.commits.toLocaleString("en-US")} tx`,
      baseline: `p50 ${a.p50.toFixed(2)} ms, p99 ${a.p99.toFixed(2)} ms, ${a.rate.toFixed(0)} tx/s`,
      litefs: `p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, ${s.rate.toFixed(0)} tx/s`,
      ratio: s.p50 / a.p50,
      note: `throughput x${(s.rate / a.rate).toFixed(2)}`,
      values: { asyncP50Ms: a.p50, asyncP99Ms: a.p99, asyncRate: a.rate, syncP50Ms: s.p50, syncP99Ms: s.p99, syncRate: s.rate },
    };
  });
}

function report(r: SyncBenchResult): void {
  console.log(`commit latency, single-row autocommit transactions (WAL, synchronous=NORMAL), ${r.perRound * r.rounds} per configuration in ${r.rounds} rounds`);
  console.log("config          p50 ms   p99 ms   commits/s");
  for (const c of r.configs) console.log(`${c.name.padEnd(14)} ${c.p50.toFixed(2).padStart(7)}  ${c.p99.toFixed(2).padStart(7)}  ${c.rate.toFixed(0).padStart(9)}`);
  for (const rtt of [0, r.rtt]) {
    const { a, s } = pair(r, rtt);
    console.log(`+${rtt} ms RTT: sync/async p50 x${(s.p50 / a.p50).toFixed(1)} (+${(s.p50 - a.p50).toFixed(2)} ms), throughput x${(s.rate / a.rate).toFixed(2)}`);
  }
}

if (isMain(import.meta.url)) {
  runSyncBench(parseSyncArgs(process.argv.slice(2)))
    .then(report)
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
