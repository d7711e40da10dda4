/**
 * Mount benchmark (issue 3, "Speed"): the same SQLite workloads on a LiteFS mount and on a plain
 * directory of the same disk, in one run, with the ratios and pass/fail against the targets.
 *
 *   npm run bench:mount                 (builds, then runs dist/bench/mount.js)
 *   node dist/bench/mount.js --quick    (a tenth of the work, for a smoke test)
 *   node dist/bench/mount.js --fuse-debug        FUSE requests per op, from libfuse's debug log
 *   node dist/bench/mount.js --cpu-prof <dir>    profile the daemon (node --cpu-prof)
 *   node dist/bench/mount.js --skip-sync         daemon with skip-sync: true (what LTX fsyncs cost)
 *   node dist/bench/mount.js --busy-poll 0       daemon with fuse.busy-poll set (0: off; default 50us)
 *   node dist/bench/mount.js --only lookups,bulk --keep
 *
 * The daemon is a separate `litefs mount` process (bench/support/daemon.ts); this process only
 * opens databases on the mount with better-sqlite3, in a worker thread (bench/support/runner.ts)
 * so that Ctrl-C can always stop the daemon and detach the mount. A target missed is reported, never fatal:
 * the exit code is 0 unless the benchmark itself could not run.
 */
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";

import { BenchDaemon, forceUnmount } from "./support/daemon.js";
import { countFuseOps, formatOpsPer, type OpCounts } from "./support/fuse-trace.js";
import { runWorkload, terminateWorkload } from "./support/runner.js";
import { WORKLOADS, type Workload, type WorkloadParams, type WorkloadResult } from "./support/workloads.js";
import { fmtMs, isMain, markdownTable, type BenchRow } from "./support/report.js";

export interface MountArgs {
  quick: boolean;
  fuseDebug: boolean;
  cpuProfDir?: string;
  only?: string[];
  keep: boolean;
  skipSync: boolean;
  /** fuse.busy-poll for the daemon (a duration); unset: the default. */
  busyPoll?: string;
}

export function parseMountArgs(argv: string[]): MountArgs {
  const args: MountArgs = { quick: false, fuseDebug: false, keep: false, skipSync: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") args.quick = true;
    else if (a === "--fuse-debug") args.fuseDebug = true;
    else if (a === "--keep") args.keep = true;
    else if (a === "--skip-sync") args.skipSync = true;
    else if (a === "--cpu-prof") args.cpuProfDir = path.resolve(argv[++i] ?? "bench-cpu-prof");
    else if (a === "--only") args.only = (argv[++i] ?? "").split(",").filter(Boolean);
    else if (a === "--busy-poll") args.busyPoll = argv[++i] ?? "";
    else throw new Error(`unknown argument ${a} (known: --quick --fuse-debug --cpu-prof <dir> --skip-sync --busy-poll <duration> --only <keys> --keep)`);
  }
  return args;
}

interface Target {
  describe: string;
  check(plain: WorkloadResult, mount: WorkloadResult): boolean;
}

const TARGETS: Record<string, Target> = {
  "delete-full": { describe: "mount ≤ 5x plain", check: (p, m) => m.ms / p.ms <= 5 },
  "wal-normal": { describe: "mount ≥ 2,000 tx/s", check: (_p, m) => rate(m) >= 2000 },
  lookups: { describe: "mount ≤ 1.5x plain", check: (p, m) => m.ms / p.ms <= 1.5 },
};

export interface MountRow {
  workload: Workload;
  plain: WorkloadResult;
  mount: WorkloadResult;
  ltxFiles: number;
  txidDelta: number;
  fuseOps?: OpCounts;
}

export interface MountBenchResult {
  rows: MountRow[];
  params: WorkloadParams;
  seconds: number;
  /** Set when the benchmark stopped early (the rows measured before are kept). */
  error?: string;
}

const rate = (r: WorkloadResult) => (r.ops * 1000) / r.ms;
const fmtRate = (r: number) => Math.round(r).toLocaleString("en-US");

/**
 * Runs the workloads, plain then mount, and returns the timings (printing progress only).
 * Ctrl-C stops the daemon, detaches the mount and exits 130.
 */
export async function runMountBench(args: MountArgs): Promise<MountBenchResult> {
  const scale = args.quick ? 10 : 1;
  const params: WorkloadParams = {
    inserts: 10_000 / scale,
    lookupRows: 100_000 / scale,
    lookups: 100_000 / scale,
    bulkRows: 200_000 / scale,
  };
  const workloads = WORKLOADS.filter((w) => !args.only || args.only.includes(w.key));
  if (workloads.length === 0) throw new Error(`--only matches none of ${WORKLOADS.map((w) => w.key).join(", ")}`);

  // Both variants under one temp folder: same disk, same filesystem for the plain run and for
  // the daemon's data dir.
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-"));
  const plainDir = path.join(dir, "plain");
  await fsp.mkdir(plainDir);
  if (args.cpuProfDir) await fsp.mkdir(args.cpuProfDir, { recursive: true });
  const daemon = new BenchDaemon(dir, { fuseDebug: args.fuseDebug, cpuProfDir: args.cpuProfDir, skipSync: args.skipSync, busyPoll: args.busyPoll });

  // Ctrl-C: stop the daemon and detach the mount before exiting.
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${sig}: stopping the daemon\n`);
    void terminateWorkload()
      .catch(() => undefined)
      .then(() => daemon.stop())
      .finally(() => forceUnmount(daemon.mnt))
      .finally(() => (args.keep ? undefined : fsp.rm(dir, { recursive: true, force: true })))
      .finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const sqliteVersion = (new Database(":memory:").prepare("SELECT sqlite_version()").pluck().get() as string) ?? "?";
  console.log(`litefs-ts mount benchmark${args.quick ? " (--quick: a tenth of the work)" : ""}${args.fuseDebug ? " (--fuse-debug: mount timings are not representative)" : ""}${args.skipSync ? " (--skip-sync: LTX files not fsynced, not durable)" : ""}${args.busyPoll !== undefined ? ` (fuse.busy-poll: ${args.busyPoll})` : ""}`);
  console.log(`node ${process.version}, SQLite ${sqliteVersion}, ${os.cpus().length} cores, ${os.type()} ${os.release()}`);
  console.log(`folder ${dir}\n`);

  const rows: MountRow[] = [];
  let error: string | undefined;
  const runStart = process.hrtime.bigint();
  try {
    await daemon.start();
    for (const w of workloads) {
      process.stdout.write(`${w.title}: plain ... `);
      const plain = (await runWorkload({ key: w.key, dir: plainDir, params })).result;
      process.stdout.write(`${fmtMs(plain.ms)}; mount ... `);
      const { result: mount, before, after } = await runWorkload({ key: w.key, dir: daemon.mnt, params, probe: daemon.probe });
      console.log(`${fmtMs(mount.ms)}`);
      const row: MountRow = {
        workload: w,
        plain,
        mount,
        ltxFiles: after!.ltx - before!.ltx,
        txidDelta: after!.txid - before!.txid,
      };
      if (args.fuseDebug) row.fuseOps = await countFuseOps(daemon.logPath, before!.logSize, after!.logSize);
      rows.push(row);
      if (interrupted) break;
    }
  } catch (err) {
    if (!interrupted) {
      error = `mount benchmark failed: ${(err as Error).message}`;
      console.error(`\nbenchmark failed: ${(err as Error).stack ?? err}`);
      console.error(`daemon log (tail):\n${await daemon.logTail(4096)}`);
    }
  } finally {
    const exit = await daemon.stop().catch(() => null);
    if (exit && exit.code !== 0) console.error(`daemon exited with ${exit.code ?? exit.signal}`);
    await forceUnmount(daemon.mnt);
    if (!args.keep) await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (args.cpuProfDir) console.log(`\ndaemon CPU profile: ${args.cpuProfDir} (open in Chrome DevTools / speedscope)`);
  if (args.keep) console.log(`kept ${dir} (daemon log: ${daemon.logPath})`);
  return { rows, params, seconds: Number(process.hrtime.bigint() - runStart) / 1e9, error };
}

function sizeOf(key: string, params: WorkloadParams): string {
  const sizes: Record<string, string> = {
    "delete-full": `${fmtRate(params.inserts)} tx`,
    "wal-normal": `${fmtRate(params.inserts)} tx`,
    lookups: `${fmtRate(params.lookups)} of ${fmtRate(params.lookupRows)} rows`,
    bulk: `${fmtRate(params.bulkRows)} rows`,
  };
  return sizes[key] ?? "-";
}

/** One row per workload for the `npm run bench` table: plain and mount times, mount / plain. */
export function mountRows(result: MountBenchResult): BenchRow[] {
  return result.rows.map((r) => {
    const target = TARGETS[r.workload.key];
    const ltxOk = r.ltxFiles === r.mount.txns && r.txidDelta === r.mount.txns;
    const notes = [target ? `${target.describe}: ${target.check(r.plain, r.mount) ? "PASS" : "FAIL"}` : "", ltxOk ? "" : "LTX count MISMATCH"].filter(Boolean);
    return {
      group: "mount",
      key: `mount.${r.workload.key}`,
      what: r.workload.title,
      n: sizeOf(r.workload.key, result.params),
      baseline: `${fmtMs(r.plain.ms)} (${fmtRate(rate(r.plain))} ${r.workload.unit}/s)`,
      litefs: `${fmtMs(r.mount.ms)} (${fmtRate(rate(r.mount))} ${r.workload.unit}/s)`,
      ratio: r.mount.ms / r.plain.ms,
      note: notes.join("; "),
      values: { plainMs: r.plain.ms, mountMs: r.mount.ms, ops: r.mount.ops, txns: r.mount.txns, ltxFiles: r.ltxFiles, txidDelta: r.txidDelta },
    };
  });
}

function report(rows: MountRow[], params: WorkloadParams, seconds: number): void {
  const table: string[][] = [["workload", "n", "plain", "mount", "ratio", "plain /s", "mount /s", "target", "result"]];
  for (const r of rows) {
    const target = TARGETS[r.workload.key];
    table.push([
      r.workload.title,
      sizeOf(r.workload.key, params),
      fmtMs(r.plain.ms),
      fmtMs(r.mount.ms),
      `${(r.mount.ms / r.plain.ms).toFixed(2)}x`,
      `${fmtRate(rate(r.plain))} ${r.workload.unit}`,
      `${fmtRate(rate(r.mount))} ${r.workload.unit}`,
      target?.describe ?? "-",
      target ? (target.check(r.plain, r.mount) ? "PASS" : "FAIL") : "-",
    ]);
  }
  console.log("");
  printTable(table);

  console.log("\nLTX sanity check (mount runs, measured section only): one LTX file per write transaction");
  const ltx: string[][] = [["workload", "transactions", "LTX files", "TXID advanced by", "check"]];
  for (const r of rows) {
    const ok = r.ltxFiles === r.mount.txns && r.txidDelta === r.mount.txns;
    ltx.push([r.workload.title, String(r.mount.txns), String(r.ltxFiles), String(r.txidDelta), ok ? "ok" : "MISMATCH"]);
  }
  printTable(ltx);

  const traced = rows.filter((r) => r.fuseOps);
  if (traced.length) {
    console.log("\nFUSE requests per op (mount runs, measured section, from -fuse.debug)");
    for (const r of traced) console.log(`  ${r.workload.title}: ${formatOpsPer(r.fuseOps!, r.mount.ops)}`);
  }
  const missed = rows.filter((r) => TARGETS[r.workload.key] && !TARGETS[r.workload.key].check(r.plain, r.mount));
  console.log(`\ntotal ${seconds.toFixed(0)} s; ${missed.length ? `targets missed: ${missed.map((r) => r.workload.key).join(", ")}` : "all targets met"}`);
  console.log("(a benchmark, not a test: a missed target does not change the exit code)");
}

function printTable(rows: string[][]): void {
  console.log(markdownTable(rows));
}

if (isMain(import.meta.url)) {
  const args = parseMountArgs(process.argv.slice(2));
  const result = await runMountBench(args);
  if (result.rows.length) report(result.rows, result.params, result.seconds);
  if (result.error) process.exitCode = 1;
}
