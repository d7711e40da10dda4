/**
 * Snapshot benchmark (issue 15, "Snapshots off the FUSE thread"), in one run: while a replica
 * receives a snapshot of a large database (1 GB by default), do the primary's app commits keep
 * going? A writer commits single-row transactions into that same database on the primary at a
 * steady rate (better-sqlite3, WAL, synchronous=NORMAL) and records each commit's latency:
 *
 *   - baseline: the commits before any replica exists;
 *   - during the snapshot: the commits from the replica's start until it holds the snapshot
 *     (the primary writes it, sends it, the replica verifies and applies it).
 *
 * Target: p99 during the snapshot within 3x of the baseline p99, both measured in this run.
 *
 *   npm run bench:snapshot                    (builds, then runs dist/bench/snapshot.js)
 *   node dist/bench/snapshot.js --quick       (a 128 MB database, shorter baseline)
 *   node dist/bench/snapshot.js --size-mb 1024 --rate 100 --baseline-s 20 --keep
 *   LITEFS_BENCH_CLI=/path/to/other/dist/src/cli/main.js node dist/bench/snapshot.js   (another build)
 *
 * The database is built in a plain folder and imported (`litefs import`); the primary keeps LTX
 * files for 1 s only, so once the import's own snapshot file is gone the replica can only get a
 * snapshot built from the live database. Two `litefs mount` processes on loopback, each with its
 * own data dir, mount and port (bench/support/cluster-node.ts). `run(opts)` returns the table's
 * rows for `npm run bench`. A missed target is reported, never fatal.
 */
import { execFile } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

import { parseBenchArgs } from "./support/args.js";
import { ClusterNode, freePort } from "./support/cluster-node.js";
import { CLI, forceUnmount, sleep } from "./support/daemon.js";
import type { BenchRow } from "./support/report.js";

const execFileAsync = promisify(execFile);

export interface SnapshotBenchOptions {
  /** Size of the database the replica receives, in MiB. */
  sizeMb: number;
  /** The writer's commits per second on the primary. */
  rate: number;
  /** Seconds of baseline commits (after 2 s of warm-up) before the replica starts. */
  baselineS: number;
  /** Give up waiting for the replica to hold the snapshot after this many seconds (the rows are still reported). */
  maxWaitS: number;
  keep: boolean;
}

export interface SnapshotBenchRow {
  measurement: string;
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 against the baseline p99 (1 for the baseline itself). */
  ratio: number;
  /** How far the paced writer fell behind its schedule at worst (ms): time when no commit could start. */
  behindMs: number;
  target: string;
  pass: boolean | null;
  note: string;
}

const DEFAULTS: SnapshotBenchOptions = { sizeMb: 1024, rate: 100, baselineS: 20, maxWaitS: 1800, keep: false };
const DB = "bench.db";
const RATIO_TARGET = 3;
const WARMUP_MS = 2000;
/** Rows of 3,000 random bytes: about one 4 KiB page each, and incompressible (LZ4 gains nothing). */
const ROW_BYTES = 3000;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// ---- worker threads: building the database, and the writer ------------------------------------

type Job =
  | { kind: "fill"; file: string; sizeMb: number }
  | { kind: "write"; db: string; rate: number; stop: SharedArrayBuffer };

/** One node of the benchmark; `retention` differs between the import and the measurement. */
function primaryNode(root: string, port: number, retention: string): ClusterNode {
  const primaryUrl = `http://127.0.0.1:${port}`;
  return new ClusterNode(path.join(root, "primary"), { hostname: "primary", candidate: true, httpPort: port, primaryUrl, retention, retentionMonitorInterval: "500ms" });
}

interface WriteResult {
  /** When each commit was due and started (hrtime ms), and how long it took. */
  dues: Float64Array;
  starts: Float64Array;
  latencies: Float64Array;
  errors: string[];
}

function serve(job: Job): WriteResult | null {
  if (job.kind === "fill") {
    const db = new Database(job.file);
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = OFF");
    db.exec("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB NOT NULL); CREATE TABLE w (id INTEGER PRIMARY KEY, at REAL NOT NULL, note TEXT NOT NULL);");
    const rows = Math.ceil((job.sizeMb * 1024 * 1024) / 4096);
    const insert = db.prepare(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT INTO big (b) SELECT randomblob(${ROW_BYTES}) FROM c`);
    for (let done = 0; done < rows; done += 10_000) insert.run(Math.min(10_000, rows - done));
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.close();
    return null;
  }
  const stop = new Int32Array(job.stop);
  const db = new Database(job.db, { timeout: 10_000 });
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  const insert = db.prepare("INSERT INTO w (at, note) VALUES (?, ?)");
  const dues: number[] = [];
  const starts: number[] = [];
  const latencies: number[] = [];
  const errors: string[] = [];
  const interval = 1000 / job.rate;
  const begin = nowMs();
  for (let i = 0; Atomics.load(stop, 0) === 0; i++) {
    const due = begin + i * interval;
    const wait = Math.floor(due - nowMs()) - 1;
    if (wait > 0) Atomics.wait(stop, 0, 0, wait);
    while (nowMs() < due) {
      // spin the last millisecond: commits start on schedule
    }
    const t0 = nowMs();
    try {
      insert.run(Date.now(), "x".repeat(60));
      dues.push(due);
      starts.push(t0);
      latencies.push(nowMs() - t0);
    } catch (err) {
      if (errors.length < 10) errors.push((err as Error).message);
    }
  }
  db.close();
  return { dues: Float64Array.from(dues), starts: Float64Array.from(starts), latencies: Float64Array.from(latencies), errors };
}

/** Worker threads running right now (terminated on Ctrl-C). */
const workers = new Set<Worker>();

function runJob(job: Job): Promise<WriteResult | null> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    workers.add(worker);
    let result: WriteResult | null = null;
    worker.once("message", (m: WriteResult | null) => (result = m));
    worker.once("error", reject);
    worker.once("exit", (code) => {
      workers.delete(worker);
      if (code === 0) resolve(result);
      else reject(new Error(`${job.kind} worker stopped (exit code ${code})`));
    });
  });
}

// ---- the run ----------------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string, pollMs = 20): Promise<number> {
  const at = await waitOrNull(check, timeoutMs, pollMs);
  if (at === null) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  return at;
}

/** When `check` first held, or null after `timeoutMs`. */
async function waitOrNull(check: () => Promise<boolean>, timeoutMs: number, pollMs = 20): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return nowMs();
    await sleep(pollMs);
  }
  return null;
}

const txidOf = (pos: string | null): number => (pos ? parseInt(pos.split("/")[0], 16) : 0);

/** Runs the benchmark; returns the rows of its table (baseline, during the snapshot, phases). */
export async function run(opts: Partial<SnapshotBenchOptions> = {}, log: (line: string) => void = console.log): Promise<SnapshotBenchRow[]> {
  const o = { ...DEFAULTS, ...opts };
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-snap-"));
  const nodes: ClusterNode[] = [];
  const stop = new SharedArrayBuffer(4);
  const stopWriter = () => {
    Atomics.store(new Int32Array(stop), 0, 1);
    Atomics.notify(new Int32Array(stop), 0);
  };
  try {
    const file = path.join(root, "import.db");
    log(`building a ${o.sizeMb} MiB database in a plain folder (${root})`);
    let t = nowMs();
    await runJob({ kind: "fill", file, sizeMb: o.sizeMb });
    const bytes = (await fsp.stat(file)).size;
    log(`  ${(bytes / 2 ** 20).toFixed(0)} MiB in ${((nowMs() - t) / 1000).toFixed(1)} s`);

    const port = await freePort();
    const primaryUrl = `http://127.0.0.1:${port}`;
    // First with a short retention: the import's own snapshot file must go, or it would be sent as it is.
    const importer = primaryNode(root, port, "1s");
    nodes.push(importer);
    await importer.start();
    log("importing it into the primary");
    t = nowMs();
    await execFileAsync(process.execPath, [CLI, "import", "--name", DB, "--url", primaryUrl, file], { maxBuffer: 1 << 20 });
    log(`  imported in ${((nowMs() - t) / 1000).toFixed(1)} s`);
    await fsp.rm(file);
    const settle = runJob({ kind: "write", db: importer.db(DB), rate: 10, stop });
    await waitUntil(
      async () => !(await fsp.readdir(path.join(importer.dataDir, "dbs", DB, "ltx"))).some((f) => f.startsWith("0000000000000001-")),
      60_000,
      "retention to remove the import's snapshot file",
    );
    stopWriter();
    await settle;
    Atomics.store(new Int32Array(stop), 0, 0);
    await importer.stop();
    nodes.pop();
    // Then with a long one, so the replica catches up from LTX files after its snapshot.
    const primary = primaryNode(root, port, "1h");
    nodes.push(primary);
    t = nowMs();
    await primary.start(300_000);
    log(`  primary restarted with retention 1h in ${((nowMs() - t) / 1000).toFixed(1)} s`);

    const writer = runJob({ kind: "write", db: primary.db(DB), rate: o.rate, stop });
    const writerStart = nowMs();
    log(`baseline: the writer commits ${o.rate} tx/s for ${o.baselineS} s`);
    await sleep(WARMUP_MS + o.baselineS * 1000);

    const replica = new ClusterNode(path.join(root, "replica"), { hostname: "replica", candidate: false, httpPort: await freePort(), primaryUrl });
    nodes.push(replica);
    const logFrom = primary.logSize();
    log("a replica starts: it can only get a snapshot");
    const snapStart = nowMs();
    await replica.start(120_000);
    // The replica starts empty: its first position is the snapshot's. "snapshot written" (this
    // build) splits the window in two; an older build only says "sending snapshot".
    let built = NaN;
    const appliedAt = await waitOrNull(
      async () => {
        if (Number.isNaN(built) && /snapshot written; sending it/.test(await primary.logSince(logFrom))) built = nowMs();
        return txidOf(await replica.pos(DB)) > 0;
      },
      o.maxWaitS * 1000,
      50,
    );
    const snapEnd = appliedAt ?? nowMs();
    log(`  snapshot applied ${((snapEnd - snapStart) / 1000).toFixed(1)} s after the replica started (written after ${((built - snapStart) / 1000).toFixed(1)} s)`);
    stopWriter();
    const w = (await writer)!;
    const sentLog = await primary.logSince(logFrom);
    const snapshotTxid = Number((/snapshot written; sending it db=\S+ txid=(\d+)/.exec(sentLog) ?? /sending snapshot db=\S+ txid=(\d+)/.exec(sentLog))?.[1] ?? 0);
    const snapshots = (sentLog.match(/sending snapshot/g) ?? []).length;

    const inWindow = (from: number, to: number) => [...w.starts.keys()].filter((i) => w.starts[i] >= from && w.starts[i] < to);
    const pick = (from: number, to: number) => inWindow(from, to).map((i) => w.latencies[i]).sort((a, b) => a - b);
    const behind = (from: number, to: number) => Math.max(0, ...inWindow(from, to).map((i) => w.starts[i] - w.dues[i]));
    const base = pick(writerStart + WARMUP_MS, snapStart);
    const during = pick(snapStart, snapEnd);
    const baseP99 = percentile(base, 99);
    const row = (measurement: string, [from, to]: [number, number], target: string, pass: boolean | null, note: string): SnapshotBenchRow => {
      const xs = pick(from, to);
      const p99 = percentile(xs, 99);
      return { measurement, n: xs.length, p50Ms: percentile(xs, 50), p99Ms: p99, maxMs: xs.at(-1) ?? NaN, ratio: p99 / baseP99, behindMs: behind(from, to), target, pass, note };
    };
    const ratio = percentile(during, 99) / baseP99;
    const expectedDuring = ((snapEnd - snapStart) / 1000) * o.rate;
    const secs = (a: number, b: number) => ((b - a) / 1000).toFixed(1);
    const notes = [
      `snapshot of ${(bytes / 2 ** 20).toFixed(0)} MiB at TXID ${snapshotTxid}, applied by the replica ${secs(snapStart, snapEnd)} s after it started` +
        (Number.isNaN(built) ? "" : ` (written by the primary after ${secs(snapStart, built)} s)`),
      `${during.length} commits in ${secs(snapStart, snapEnd)} s during it (${((during.length * 1000) / (snapEnd - snapStart)).toFixed(0)} tx/s; ~${Math.round(expectedDuring)} paced)`,
      ...(appliedAt === null ? [`THE REPLICA DID NOT GET THE SNAPSHOT within ${o.maxWaitS} s`] : []),
      ...(snapshots !== 1 ? [`the primary sent ${snapshots} snapshots (expected 1)`] : []),
      ...w.errors.map((e) => `writer error: ${e}`),
    ];
    const rows = [
      row(`commits @ ${o.rate} tx/s, no snapshot (baseline)`, [writerStart + WARMUP_MS, snapStart], "-", null, ""),
      row(`commits @ ${o.rate} tx/s, while a replica receives the snapshot`, [snapStart, snapEnd], `p99 ≤ ${RATIO_TARGET}x baseline`, ratio <= RATIO_TARGET && snapshots === 1 && appliedAt !== null, notes.join("; ")),
    ];
    if (!Number.isNaN(built)) {
      rows.push(row("  of which: while the primary writes it", [snapStart, built], "-", null, ""));
      rows.push(row("  of which: while it is sent and applied", [built, snapEnd], "-", null, ""));
    }
    return rows;
  } finally {
    stopWriter();
    for (const wk of workers) await wk.terminate().catch(() => undefined);
    for (const n of nodes) await n.stop().catch(() => forceUnmount(n.mnt));
    if (!o.keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
    else log(`kept ${root}`);
  }
}

function table(rows: SnapshotBenchRow[]): string {
  const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "-");
  const header = ["measurement", "commits", "p50 ms", "p99 ms", "max ms", "p99 / baseline", "behind schedule ms", "target", "result"];
  const cells = rows.map((r) => [r.measurement, r.n.toLocaleString("en-US"), f(r.p50Ms), f(r.p99Ms), f(r.maxMs), `${f(r.ratio)}x`, f(r.behindMs, 0), r.target, r.pass === null ? "-" : r.pass ? "PASS" : "FAIL"]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => "| " + c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(" | ") + " |";
  const sep = "|" + widths.map((w, i) => (i === 0 ? ":" + "-".repeat(w + 1) : "-".repeat(w + 1) + ":")).join("|") + "|";
  return [line(header), sep, ...cells.map(line)].join("\n");
}

/** This benchmark's command-line options (its own command, and `npm run bench --snapshot-args`). */
export function parseSnapshotArgs(argv: string[]): SnapshotBenchOptions {
  return parseBenchArgs<SnapshotBenchOptions>(argv, {
    defaults: DEFAULTS,
    quick: { sizeMb: 128, baselineS: 8 },
    numbers: { "--size-mb": "sizeMb", "--rate": "rate", "--baseline-s": "baselineS", "--max-wait-s": "maxWaitS" },
  });
}

/** The rows in the shape of `npm run bench`'s table: p99 commit latency against the no-snapshot baseline. */
export function snapshotRows(rows: SnapshotBenchRow[], opts: SnapshotBenchOptions): BenchRow[] {
  const baseline = rows[0];
  return rows.map((r, i) => ({
    group: "snapshot",
    key: `snapshot.${i === 0 ? "baseline" : r.measurement.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "")}`,
    what: `snapshot of ${opts.sizeMb} MB to a new replica: commit p99, ${r.measurement}`,
    n: `${r.n} tx`,
    baseline: i === 0 || !baseline ? "-" : `${baseline.p99Ms.toFixed(1)} ms`,
    litefs: `${r.p99Ms.toFixed(1)} ms (p50 ${r.p50Ms.toFixed(1)}, max ${r.maxMs.toFixed(0)})`,
    ratio: i === 0 ? null : r.ratio,
    note: [r.target, r.pass === null ? "" : r.pass ? "met" : "missed", r.note].filter(Boolean).join("; "),
    values: { n: r.n, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs, ratio: r.ratio, behindMs: r.behindMs, pass: r.pass },
  }));
}

async function main(): Promise<void> {
  const args = parseSnapshotArgs(process.argv.slice(2));
  process.once("SIGINT", () => {
    console.error("interrupted: stop the daemons with the next Ctrl-C if this hangs");
    for (const wk of workers) void wk.terminate();
  });
  const started = Date.now();
  const rows = await run(args);
  console.log("");
  console.log(`Node ${process.version}, ${os.cpus().length} cores, ${os.platform()} ${os.release()}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);
  console.log("");
  console.log(table(rows));
  for (const r of rows) if (r.note) console.log(`note: ${r.note}`);
  console.log(`\ntotal ${((Date.now() - started) / 1000).toFixed(0)} s; ${rows.every((r) => r.pass !== false) ? "target met" : "target missed (see above)"}`);
}

if (isMainThread) {
  if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
    main().catch((err) => {
      console.error(err);
      process.exit(1);
    });
  }
} else if (parentPort) {
  parentPort.postMessage(serve(workerData as Job));
}
