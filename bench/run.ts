/**
 * Every benchmark in one run, one table (issue 15): each workload against its baseline measured
 * in the same run (plain SQLite in a plain directory, the app without the proxy, asynchronous
 * replication, cp + fsync, an empty node's start), with the absolute figures beside the ratios,
 * and the machine's load while it ran (this machine is shared: compare ratios, not absolutes).
 *
 *   npm run bench                           (builds, then runs dist/bench/run.js)
 *   node dist/bench/run.js --quick          (every benchmark's --quick; a few minutes)
 *   node dist/bench/run.js --only mount,scale
 *   node dist/bench/run.js --skip backup
 *   node dist/bench/run.js --quick --full mount --scale-args "--dbs 1000"   (mount full size, scale with 1,000 dbs)
 *
 * The table is printed at the end (markdown) and written with the raw figures to
 * bench/results/<UTC timestamp>[-quick].json (ignored by git; see bench/results/.gitignore).
 * Each benchmark also has its own command with its own options and detailed report
 * (`npm run bench:mount`, ...). A benchmark that fails is reported in the table's notes and the
 * others still run; the exit code is 1 only then, never for a missed target.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";

import { backupRows, parseBackupArgs, runBackupBench } from "./backup.js";
import { mountRows, parseMountArgs, runMountBench } from "./mount.js";
import { parseProxyArgs, proxyRows, runProxyBench } from "./proxy.js";
import { parseReplicationArgs, replicationRows, runReplicationBench } from "./replication.js";
import { parseScaleArgs, runScaleBench, scaleRows } from "./scale.js";
import { ROOT } from "./support/daemon.js";
import { benchRowsTable, type BenchRow } from "./support/report.js";
import { parseSnapshotArgs, run as runSnapshotBench, snapshotRows } from "./snapshot.js";
import { parseSyncArgs, runSyncBench, syncRows } from "./sync.js";

interface SectionResult {
  rows: BenchRow[];
  problems: string[];
}

/** One benchmark of the run: its name (for --only/--skip) and how to run it, quick or full. */
interface Section {
  name: string;
  /** `argv`: the benchmark's own command-line arguments (`--quick`, and any given with --<name>-args). */
  run(argv: string[]): Promise<SectionResult>;
}

/**
 * The benchmarks, in the order they run. A new one is one entry here: a module exporting
 * `runXBench(args)` and `xRows(result)` (see bench/support/report.ts).
 */
const SECTIONS: Section[] = [
  {
    name: "mount",
    async run(argv) {
      const r = await runMountBench(parseMountArgs(argv));
      return { rows: mountRows(r), problems: r.error ? [r.error] : [] };
    },
  },
  {
    name: "replication",
    async run(argv) {
      const r = await runReplicationBench(parseReplicationArgs(argv));
      return { rows: replicationRows(r), problems: r.problems };
    },
  },
  {
    name: "proxy",
    async run(argv) {
      const r = await runProxyBench(parseProxyArgs(argv));
      return { rows: proxyRows(r), problems: r.problems };
    },
  },
  {
    name: "sync",
    async run(argv) {
      return { rows: syncRows(await runSyncBench(parseSyncArgs(argv))), problems: [] };
    },
  },
  {
    name: "backup",
    async run(argv) {
      return { rows: backupRows(await runBackupBench(parseBackupArgs(argv))), problems: [] };
    },
  },
  {
    name: "snapshot",
    async run(argv) {
      const opts = parseSnapshotArgs(argv);
      return { rows: snapshotRows(await runSnapshotBench(opts), opts), problems: [] };
    },
  },
  {
    name: "scale",
    async run(argv) {
      const r = await runScaleBench(parseScaleArgs(argv));
      return { rows: scaleRows(r), problems: r.problems };
    },
  },
];

interface Args {
  quick: boolean;
  only: string[] | null;
  skip: string[];
  /** Run at full size even with --quick. */
  full: string[];
  /** More arguments for one benchmark: `--scale-args "--mb 256"`. */
  extra: Record<string, string[]>;
}

function parseArgs(args: string[]): Args {
  const out: Args = { quick: false, only: null, skip: [], full: [], extra: {} };
  const names = (v: string | undefined) => {
    const list = (v ?? "").split(",").filter(Boolean);
    const unknown = list.filter((n) => !SECTIONS.some((s) => s.name === n));
    if (unknown.length || !list.length) throw new Error(`unknown benchmark ${unknown.join(", ") || "(none given)"} (known: ${SECTIONS.map((s) => s.name).join(", ")})`);
    return list;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--quick") out.quick = true;
    else if (a === "--only") out.only = names(args[++i]);
    else if (a === "--skip") out.skip = names(args[++i]);
    else if (a === "--full") out.full = names(args[++i]);
    else if (/^--[a-z]+-args$/.test(a)) out.extra[names(a.slice(2, -5))[0]] = (args[++i] ?? "").split(/\s+/).filter(Boolean);
    else throw new Error(`unknown argument ${a} (known: --quick, --only <names>, --skip <names>, --full <names>, --<name>-args "<arguments>")`);
  }
  return out;
}

/** The load average every 10 s, to say how busy the machine was during the run. */
class LoadSampler {
  readonly samples: number[] = [];
  private timer = setInterval(() => this.samples.push(os.loadavg()[0]), 10_000);

  constructor() {
    this.timer.unref();
    this.samples.push(os.loadavg()[0]);
  }

  stop(): { mean: number; max: number; samples: number } {
    clearInterval(this.timer);
    this.samples.push(os.loadavg()[0]);
    return { mean: this.samples.reduce((a, b) => a + b, 0) / this.samples.length, max: Math.max(...this.samples), samples: this.samples.length };
  }
}

function gitCommit(): string {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: ROOT, encoding: "utf8" }).trim() !== "";
    return dirty ? `${commit} (with uncommitted changes)` : commit;
  } catch {
    return "unknown";
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const sections = SECTIONS.filter((s) => (args.only ? args.only.includes(s.name) : true) && !args.skip.includes(s.name));
  const startedAt = new Date();
  const sqlite = new Database(":memory:").prepare("SELECT sqlite_version()").pluck().get() as string;
  const cores = os.cpus().length;
  const machine = { node: process.version, sqlite, cores, cpu: os.cpus()[0]?.model ?? "?", kernel: `${os.type()} ${os.release()}`, memoryMB: Math.round(os.totalmem() / 2 ** 20), commit: gitCommit() };
  console.log(`litefs-ts benchmarks${args.quick ? " (--quick)" : ""}: ${sections.map((s) => s.name).join(", ")}`);
  console.log(`node ${machine.node}, SQLite ${sqlite}, ${cores} cores, ${machine.kernel}, commit ${machine.commit}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);

  const load = new LoadSampler();
  const rows: BenchRow[] = [];
  const problems: string[] = [];
  const timings: Record<string, number> = {};
  for (const s of sections) {
    console.log(`=== ${s.name}`);
    const t0 = Date.now();
    try {
      const r = await s.run([...(args.quick && !args.full.includes(s.name) ? ["--quick"] : []), ...(args.extra[s.name] ?? [])]);
      rows.push(...r.rows);
      problems.push(...r.problems.map((p) => `${s.name}: ${p}`));
    } catch (err) {
      problems.push(`${s.name}: failed: ${(err as Error).stack ?? err}`);
    }
    timings[s.name] = (Date.now() - t0) / 1000;
    console.log(`=== ${s.name}: ${timings[s.name].toFixed(0)} s\n`);
  }
  const loadStats = load.stop();
  const finishedAt = new Date();
  const state = loadStats.mean < cores * 0.5 ? "quiet" : loadStats.mean < cores ? "moderately busy" : "busy";

  console.log(`\nlitefs-ts benchmarks, ${startedAt.toISOString()}${args.quick ? ", --quick" : ""}: node ${machine.node}, SQLite ${sqlite}, ${cores} cores, commit ${machine.commit}`);
  console.log(
    `machine ${state} during the run: load average mean ${loadStats.mean.toFixed(2)}, max ${loadStats.max.toFixed(2)} on ${cores} cores (the benchmark's own processes included); ` +
      `ratio = litefs / baseline, both measured in this run (time or latency: higher is slower)\n`,
  );
  console.log(benchRowsTable(rows));
  for (const p of problems) console.log(`\nproblem: ${p}`);
  console.log(`\ntotal ${((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(0)} s (${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(", ")})`);

  const dir = path.join(ROOT, "bench", "results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${startedAt.toISOString().replace(/[:.]/g, "-")}${args.quick ? "-quick" : ""}.json`);
  const json = { argv: process.argv.slice(2), startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), quick: args.quick, sections: sections.map((s) => s.name), timings, machine, load: { ...loadStats, state }, rows, problems };
  fs.writeFileSync(file, JSON.stringify(json, null, 2) + "\n");
  console.log(`results: ${path.relative(process.cwd(), file)}`);
  if (problems.length) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
