/**
 * Scale benchmark (issue 15, "Scale"), in one run:
 *
 *  (a) many databases: `--dbs` (1,000) small databases on one primary with a replica connected:
 *      the time to create them (against the same in a plain directory), how long after the last
 *      one the replica matched, opening all of them at once, a new replica's catch-up of all of
 *      them, the restart of the primary (to mounted) and of the replica (until it matches), and
 *      the daemons' RSS.
 *  (b) big databases: `--big-dbs` (10) databases of `--mb` (1,024) MB each, copied into a
 *      primary's data dir and adopted at its first start; then a new replica receives each as a
 *      snapshot built from the live database (their stored TXID 1 files are removed by retention
 *      first); then the primary is restarted cleanly and after a kill -9. RSS sampled throughout.
 *
 *   npm run bench:scale                    (builds, then runs dist/bench/scale.js)
 *   node dist/bench/scale.js --quick       (100 databases; 3 x 64 MB)
 *   node dist/bench/scale.js --dbs 1000 --big-dbs 10 --mb 1024 --keep
 *
 * Start times are from spawning `litefs mount` until its mount answers and it logged "mounted"
 * (node's own start-up included: compare with the empty node's start, measured in the same run).
 * Real `litefs mount` processes on loopback (static lease; bench/support/cluster-node.ts); every
 * process started here is stopped by PID and every mount detached, also on failure or Ctrl-C.
 * The big part needs about (3 x big-dbs + 2) x mb of free disk under $TMPDIR; it is skipped,
 * with a note, when the machine has less.
 */
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { request } from "undici";

import { parseBenchArgs } from "./support/args.js";
import { ClusterNode, freePort } from "./support/cluster-node.js";
import { forceUnmount, sleep } from "./support/daemon.js";
import { fmtInt, fmtMs, isMain, markdownTable, type BenchRow } from "./support/report.js";
import { runScaleJob, terminateScaleJob } from "./support/scale-workers.js";

export interface ScaleArgs {
  dbs: number;
  bigDbs: number;
  mb: number;
  keep: boolean;
}

export function parseScaleArgs(argv: string[]): ScaleArgs {
  return parseBenchArgs<ScaleArgs>(argv, {
    defaults: { dbs: 1000, bigDbs: 10, mb: 1024, keep: false },
    quick: { dbs: 100, bigDbs: 3, mb: 64 },
    numbers: { "--dbs": "dbs", "--big-dbs": "bigDbs", "--mb": "mb" },
    integers: true,
  });
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// ---- RSS ----------------------------------------------------------------------------------------

/** Resident set of a process in bytes (VmRSS), or NaN when it is gone. */
export function rssOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const kb = /^VmRSS:\s*(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb ? Number(kb) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of a process, or NaN when it is gone. */
export function fdsOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

/** Samples a daemon's RSS every 200 ms (its pid may change across restarts); keeps the peak. */
class RssSampler {
  peak = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly pid: () => number | undefined) {
    this.timer = setInterval(() => this.sample(), 200);
    this.timer.unref();
  }

  sample(): number {
    const rss = rssOf(this.pid());
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  /** The peak since the last reset (and starts a new one). */
  reset(): number {
    this.sample();
    const peak = this.peak;
    this.peak = 0;
    return peak;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

const MB = 2 ** 20;
const fmtRss = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / MB).toFixed(0)} MB` : "-");

// ---- positions ----------------------------------------------------------------------------------

async function positions(node: ClusterNode): Promise<Map<string, string>> {
  const res = await request(`http://127.0.0.1:${node.opts.httpPort}/info`);
  const info = (await res.body.json()) as { databases?: Record<string, { position: string }> };
  return new Map(Object.entries(info.databases ?? {}).map(([name, d]) => [name, d.position]));
}

/** Polls both nodes' /info until the replica has every database at the primary's position; returns nowMs() then. */
async function waitForMatch(primary: ClusterNode, replica: ClusterNode, expected: number, timeoutMs: number, giveUp?: () => Promise<string | null>): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let behind = -1;
  let polls = 0;
  while (Date.now() < deadline) {
    const why = giveUp && ++polls % 20 === 0 ? await giveUp() : null;
    if (why) throw new Error(`${replica.opts.hostname} gave up: ${why} (${behind} databases behind)`);
    try {
      const want = await positions(primary);
      const have = await positions(replica);
      behind = 0;
      for (const [name, pos] of want) if (have.get(name) !== pos) behind++;
      if (want.size >= expected && behind === 0) return nowMs();
    } catch {
      // a node still starting
    }
    await sleep(50);
  }
  throw new Error(`${replica.opts.hostname} did not match the primary within ${timeoutMs} ms (${behind} databases behind)`);
}

/** How long the daemon's last start spent opening (recovering) its databases, from its log. */
async function storeOpenMs(node: ClusterNode, from: number): Promise<number> {
  const ms = [...(await node.logSince(from)).matchAll(/store opened.*\bms=(\d+)/g)].at(-1)?.[1];
  return ms === undefined ? NaN : Number(ms);
}

async function countInLog(node: ClusterNode, from: number, re: RegExp): Promise<number> {
  return (await node.logSince(from)).split("\n").filter((l) => re.test(l)).length;
}

// ---- (a) many databases -------------------------------------------------------------------------

export interface ManyResult {
  dbs: number;
  plainCreateMs: number;
  createMs: number;
  /** From the last create's return until the connected replica had every database. */
  replicaLagMs: number;
  plainOpenAllMs: number;
  openAllMs: number;
  /** A replica with an empty data dir: its start (to mounted), and until it had every database. */
  emptyStartMs: number;
  newReplicaCatchupMs: number;
  primaryRestartMs: number;
  /** Of which opening (recovering) the databases, from the daemon's log. */
  primaryOpenMs: number;
  replicaRestartMs: number;
  primaryRss: number;
  /** The primary's open file descriptors after every database was opened once. */
  primaryFds: number;
  primaryPeakRss: number;
  replicaRss: number;
  primaryRestartRss: number;
}

async function measureMany(root: string, n: number, nodes: ClusterNode[], keep: boolean): Promise<ManyResult> {
  const plainDir = path.join(root, "plain");
  await fsp.mkdir(plainDir, { recursive: true });
  console.log(`(a) ${n} databases: plain directory ...`);
  const plainCreate = await runScaleJob({ kind: "create-many", dir: plainDir, prefix: "db", count: n });
  const plainOpenAll = await runScaleJob({ kind: "open-all", dir: plainDir, prefix: "db", count: n });

  const port = await freePort();
  const primaryUrl = `http://127.0.0.1:${port}`;
  const node = (host: string, candidate: boolean, httpPort: number) => new ClusterNode(path.join(root, host), { hostname: host, candidate, httpPort, primaryUrl });
  const primary = node("primary", true, port);
  const replica = node("replica0", false, await freePort());
  nodes.push(primary, replica);
  await primary.start();
  await replica.start();
  const rss = new RssSampler(() => primary.pid);
  try {
    console.log(`(a) ${n} databases: on the primary's mount, replica0 connected ...`);
    const create = await runScaleJob({ kind: "create-many", dir: primary.mnt, prefix: "db", count: n });
    const created = nowMs();
    const matched = await waitForMatch(primary, replica, n, 600_000);
    const primaryRss = rss.sample();
    const replicaRss = rssOf(replica.pid);
    const openAll = await runScaleJob({ kind: "open-all", dir: primary.mnt, prefix: "db", count: n });
    const primaryFds = fdsOf(primary.pid);

    console.log(`(a) ${n} databases: a new replica catches up ...`);
    const fresh = node("replica1", false, await freePort());
    nodes.push(fresh);
    const t0 = nowMs();
    await fresh.start(600_000);
    const emptyStartMs = nowMs() - t0;
    const caughtUp = await waitForMatch(primary, fresh, n, 600_000);
    await fresh.stop();

    console.log(`(a) ${n} databases: restarts ...`);
    await replica.stop();
    await primary.stop();
    const primaryPeakRss = rss.reset();
    const restartLog = primary.logSize();
    const t1 = nowMs();
    await primary.start(600_000);
    const primaryRestartMs = nowMs() - t1;
    const primaryOpenMs = await storeOpenMs(primary, restartLog);
    const primaryRestartRss = rss.sample();
    const t2 = nowMs();
    await replica.start(600_000);
    const replicaDone = await waitForMatch(primary, replica, n, 600_000);
    return {
      dbs: n,
      plainCreateMs: plainCreate.ms,
      createMs: create.ms,
      replicaLagMs: matched - created,
      plainOpenAllMs: plainOpenAll.ms,
      openAllMs: openAll.ms,
      emptyStartMs,
      newReplicaCatchupMs: caughtUp - t0,
      primaryRestartMs,
      primaryOpenMs,
      replicaRestartMs: replicaDone - t2,
      primaryRss,
      primaryFds,
      primaryPeakRss,
      replicaRss,
      primaryRestartRss,
    };
  } finally {
    rss.stop();
    for (const nd of [replica, primary]) await nd.stop().catch(() => forceUnmount(nd.mnt));
    if (!keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
}

// ---- (b) big databases --------------------------------------------------------------------------

export interface BigResult {
  dbs: number;
  mb: number;
  bytes: number;
  /** cp + fsync of every database file into the primary's data dir (the baseline for moving the bytes). */
  copyMs: number;
  /** First start: recovery adopts each file (page checksums, a TXID 1 snapshot LTX of each). */
  adoptMs: number;
  adoptPeakRss: number;
  /** A new replica: start until it holds every database, each sent as a snapshot built from the live database. */
  /** NaN when the replica did not get there within the budget (snapshotError says why). */
  snapshotMs: number;
  snapshotError?: string;
  snapshotsSent: number;
  snapshotPeakRss: number;
  replicaPeakRss: number;
  cleanRestartMs: number;
  /** Of which opening (recovering) the databases, from the daemon's log. */
  cleanOpenMs: number;
  cleanRestartRss: number;
  crashRestartMs: number;
  crashOpenMs: number;
  crashRestartRss: number;
  /** Databases whose page checksums the clean restart took from the shutdown instead of recomputing. */
  checksumsTrusted: number;
  /** Whether the shutdown before the "clean" restart exited 0 (not killed after the stop timeout). */
  cleanStop: boolean;
}

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

async function measureBig(root: string, n: number, mb: number, nodes: ClusterNode[], keep: boolean): Promise<BigResult> {
  await fsp.mkdir(root, { recursive: true });
  const source = path.join(root, "source.db");
  console.log(`(b) ${n} x ${mb} MB: building one database of ${mb} MB ...`);
  await runScaleJob({ kind: "build", file: source, mb });
  const bytes = (await fsp.stat(source)).size;

  const port = await freePort();
  const primaryUrl = `http://127.0.0.1:${port}`;
  // Short retention, so each database's stored TXID 1 file goes once it has a TXID 2 and a new
  // replica must be sent a snapshot built from the live database.
  const retention = { retention: "1s", dataYaml: ["  retention-monitor-interval: 1s"] };
  const primary = new ClusterNode(path.join(root, "primary"), { hostname: "primary", candidate: true, httpPort: port, primaryUrl, ...retention });
  nodes.push(primary);
  const names = Array.from({ length: n }, (_, i) => `big${i}.db`);
  console.log(`(b) ${n} x ${mb} MB: copying into the primary's data dir ...`);
  const t0 = nowMs();
  for (const name of names) {
    const dir = path.join(primary.dataDir, "dbs", name);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.copyFile(source, path.join(dir, "database"));
    const fh = await fsp.open(path.join(dir, "database"), "r+");
    await fh.sync();
    await fh.close();
  }
  const copyMs = nowMs() - t0;
  await fsp.rm(source);

  const rss = new RssSampler(() => primary.pid);
  let replica: ClusterNode | null = null;
  try {
    console.log(`(b) ${n} x ${mb} MB: first start (adopting them) ...`);
    const t1 = nowMs();
    await primary.start(3_600_000);
    const adoptMs = nowMs() - t1;
    const adoptPeakRss = rss.reset();

    await runScaleJob({ kind: "touch", files: names.map((name) => primary.db(name)) });
    const deadline = Date.now() + 120_000;
    for (const name of names) {
      const ltx = path.join(primary.dataDir, "dbs", name, "ltx");
      while ((await fsp.readdir(ltx)).filter((f) => f.endsWith(".ltx")).length > 1) {
        if (Date.now() > deadline) throw new Error(`retention did not remove the TXID 1 file of ${name}`);
        await sleep(200);
      }
    }

    console.log(`(b) ${n} x ${mb} MB: a new replica receives snapshots ...`);
    replica = new ClusterNode(path.join(root, "replica"), { hostname: "replica", candidate: false, httpPort: await freePort(), primaryUrl, ...retention });
    nodes.push(replica);
    const replicaRss = new RssSampler(() => replica?.pid);
    const logFrom = primary.logSize();
    rss.reset();
    const replicaLogFrom = replica.logSize();
    const t2 = nowMs();
    await replica.start(3_600_000);
    // Bounded: a replica that keeps timing out while the primary builds a snapshot never gets there.
    const budgetMs = Math.max(120_000, (n * mb * 1000) / 10);
    // The same database's snapshot started over and over: the replica will not get there.
    const restarting = async () => {
      const perDb = new Map<string, number>();
      for (const l of (await primary.logSince(logFrom)).split("\n")) {
        const db = /sending snapshot.*db=(\S+)/.exec(l)?.[1];
        if (db) perDb.set(db, (perDb.get(db) ?? 0) + 1);
      }
      const worst = Math.max(0, ...perDb.values());
      return worst > 4 ? `a snapshot was started ${worst} times for one database` : null;
    };
    let snapshotMs = NaN;
    let snapshotError: string | undefined;
    try {
      snapshotMs = (await waitForMatch(primary, replica, n, budgetMs, restarting)) - t2;
    } catch (err) {
      const timeouts = await countInLog(replica, replicaLogFrom, /UND_ERR_BODY_TIMEOUT/);
      snapshotError = `${(err as Error).message}; the replica's stream timed out ${timeouts} times`;
    }
    const snapshotPeakRss = rss.reset();
    const replicaPeakRss = replicaRss.reset();
    replicaRss.stop();
    const snapshotsSent = await countInLog(primary, logFrom, /sending snapshot/);
    await replica.stop();
    if (!keep) await fsp.rm(replica.dir, { recursive: true, force: true });

    console.log(`(b) ${n} x ${mb} MB: restarts ...`);
    // A clean shutdown: a primary still building a snapshot on its event loop can take a while to stop.
    const exit = await primary.stop(600_000);
    const cleanStop = exit !== null && exit.code === 0;
    let from = primary.logSize();
    const t3 = nowMs();
    await primary.start(3_600_000);
    const cleanRestartMs = nowMs() - t3;
    const cleanOpenMs = await storeOpenMs(primary, from);
    const cleanRestartRss = rss.sample();
    const checksumsTrusted = await countInLog(primary, from, /page checksums (taken|trusted) from/);
    await primary.kill9();
    from = primary.logSize();
    const t4 = nowMs();
    await primary.start(3_600_000);
    const crashRestartMs = nowMs() - t4;
    const crashOpenMs = await storeOpenMs(primary, from);
    const crashRestartRss = rss.sample();
    return {
      dbs: n,
      mb,
      bytes,
      copyMs,
      adoptMs,
      adoptPeakRss,
      snapshotMs,
      snapshotError,
      snapshotsSent,
      snapshotPeakRss,
      replicaPeakRss,
      cleanRestartMs,
      cleanOpenMs,
      cleanRestartRss,
      crashRestartMs,
      crashOpenMs,
      crashRestartRss,
      checksumsTrusted,
      cleanStop,
    };
  } finally {
    rss.stop();
    for (const nd of [replica, primary]) if (nd) await nd.stop().catch(() => forceUnmount(nd.mnt));
    if (!keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
}

// ---- the run ------------------------------------------------------------------------------------

export interface ScaleBenchResult {
  many: ManyResult | null;
  big: BigResult | null;
  problems: string[];
  seconds: number;
}

/** Runs (a) then (b), each on fresh daemons; Ctrl-C stops them and exits 130. */
export async function runScaleBench(args: ScaleArgs): Promise<ScaleBenchResult> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-scale-"));
  const nodes: ClusterNode[] = [];
  const started = Date.now();
  const problems: string[] = [];
  const onSigint = () => {
    console.error("interrupted: stopping the daemons");
    void terminateScaleJob()
      .catch(() => undefined)
      .then(async () => {
        for (const nd of nodes) await nd.stop().catch(() => forceUnmount(nd.mnt));
      })
      .finally(() => (args.keep ? undefined : fsp.rm(root, { recursive: true, force: true })))
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", onSigint);
  let many: ManyResult | null = null;
  let big: BigResult | null = null;
  try {
    try {
      many = await measureMany(path.join(root, "many"), args.dbs, nodes, args.keep);
    } catch (err) {
      problems.push(`many databases: ${(err as Error).stack ?? err}`);
    }
    const need = (3 * args.bigDbs + 2) * args.mb * MB;
    const free = freeBytes(root);
    if (free < need * 1.1) {
      problems.push(`big databases skipped: they need about ${fmtInt(need / MB)} MB of free disk, ${fmtInt(free / MB)} MB free under ${root}`);
    } else {
      try {
        big = await measureBig(path.join(root, "big"), args.bigDbs, args.mb, nodes, args.keep);
      } catch (err) {
        problems.push(`big databases: ${(err as Error).stack ?? err}`);
      }
    }
  } finally {
    for (const nd of nodes) await nd.stop().catch(() => forceUnmount(nd.mnt));
    process.off("SIGINT", onSigint);
    if (!args.keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
    else console.log(`kept ${root}`);
  }
  return { many, big, problems, seconds: (Date.now() - started) / 1000 };
}

/** The rows of `npm run bench` (and of this benchmark's own table). */
export function scaleRows(r: ScaleBenchResult): BenchRow[] {
  const rows: BenchRow[] = [];
  const row = (key: string, what: string, n: string, baseline: string, litefs: string, ratio: number | null, values: BenchRow["values"], note?: string) =>
    rows.push({ group: "scale", key: `scale.${key}`, what, n, baseline, litefs, ratio, values, note });
  const m = r.many;
  if (m) {
    const n = `${fmtInt(m.dbs)} dbs`;
    row("many.create", "create databases (WAL, table, one row), replica connected", n, fmtMs(m.plainCreateMs), fmtMs(m.createMs), m.createMs / m.plainCreateMs, { plainMs: m.plainCreateMs, ms: m.createMs }, `replica matched ${fmtMs(m.replicaLagMs)} after the last`);
    row("many.open-all", "open all at once, read a row from each", n, fmtMs(m.plainOpenAllMs), fmtMs(m.openAllMs), m.openAllMs / m.plainOpenAllMs, { plainMs: m.plainOpenAllMs, ms: m.openAllMs });
    row("many.new-replica", "new replica: start until it holds every database (baseline: its start to mounted)", n, fmtMs(m.emptyStartMs), fmtMs(m.newReplicaCatchupMs), m.newReplicaCatchupMs / m.emptyStartMs, { emptyStartMs: m.emptyStartMs, ms: m.newReplicaCatchupMs });
    row("many.restart-primary", "restart the primary, to mounted (baseline: an empty node's start)", n, fmtMs(m.emptyStartMs), fmtMs(m.primaryRestartMs), m.primaryRestartMs / m.emptyStartMs, { emptyStartMs: m.emptyStartMs, ms: m.primaryRestartMs, openMs: m.primaryOpenMs }, `recovering the databases: ${fmtMs(m.primaryOpenMs)}`);
    row("many.restart-replica", "restart the replica, until it matches (baseline: an empty node's start)", n, fmtMs(m.emptyStartMs), fmtMs(m.replicaRestartMs), m.replicaRestartMs / m.emptyStartMs, { emptyStartMs: m.emptyStartMs, ms: m.replicaRestartMs });
    row(
      "many.rss",
      "daemon RSS: primary after creating / peak / after restart; replica",
      n,
      "-",
      `${fmtRss(m.primaryRss)} / ${fmtRss(m.primaryPeakRss)} / ${fmtRss(m.primaryRestartRss)}; ${fmtRss(m.replicaRss)}`,
      null,
      { primaryRss: m.primaryRss, primaryPeakRss: m.primaryPeakRss, primaryRestartRss: m.primaryRestartRss, replicaRss: m.replicaRss, primaryFds: m.primaryFds },
      `primary holds ${fmtInt(m.primaryFds)} open files after every database was used`,
    );
  }
  const b = r.big;
  if (b) {
    const n = `${b.dbs} x ${(b.bytes / MB).toFixed(0)} MB`;
    row("big.adopt", "first start, adopting the files (checksums, a snapshot LTX each; baseline: cp + fsync)", n, fmtMs(b.copyMs), fmtMs(b.adoptMs), b.adoptMs / b.copyMs, { copyMs: b.copyMs, ms: b.adoptMs, peakRss: b.adoptPeakRss }, `peak RSS ${fmtRss(b.adoptPeakRss)}`);
    row(
      "big.snapshot",
      "new replica: start until it holds all, each sent as a snapshot (baseline: cp + fsync)",
      n,
      fmtMs(b.copyMs),
      `${fmtMs(b.snapshotMs)} (${fmtMs(b.snapshotMs / b.dbs)} each)`,
      Number.isFinite(b.snapshotMs) ? b.snapshotMs / b.copyMs : null,
      { copyMs: b.copyMs, ms: Number.isFinite(b.snapshotMs) ? b.snapshotMs : null, error: b.snapshotError ?? null, snapshotsSent: b.snapshotsSent, primaryPeakRss: b.snapshotPeakRss, replicaPeakRss: b.replicaPeakRss },
      `${b.snapshotError ? `DID NOT COMPLETE (${b.snapshotError}); ` : ""}${b.snapshotsSent} snapshots sent; peak RSS primary ${fmtRss(b.snapshotPeakRss)}, replica ${fmtRss(b.replicaPeakRss)}`,
    );
    row(
      "big.restart-clean",
      "restart after a clean shutdown, to mounted (baseline: restart after kill -9)",
      n,
      `${fmtMs(b.crashRestartMs)} (recovery ${fmtMs(b.crashOpenMs)})`,
      `${fmtMs(b.cleanRestartMs)} (recovery ${fmtMs(b.cleanOpenMs)})`,
      b.cleanRestartMs / b.crashRestartMs,
      { ms: b.cleanRestartMs, cleanStop: b.cleanStop, openMs: b.cleanOpenMs, rss: b.cleanRestartRss, crashMs: b.crashRestartMs, crashOpenMs: b.crashOpenMs, crashRss: b.crashRestartRss, checksumsTrusted: b.checksumsTrusted },
      `${b.cleanStop ? "" : "THE SHUTDOWN WAS NOT CLEAN; "}page checksums reused for ${b.checksumsTrusted} of ${b.dbs} (kill -9: recomputed); RSS after ${fmtRss(b.cleanRestartRss)} / ${fmtRss(b.crashRestartRss)} (target < 200 MB)`,
    );
  }
  return rows;
}

function report(r: ScaleBenchResult): void {
  const rows = scaleRows(r);
  console.log("");
  if (rows.length) console.log(markdownTable([["measurement", "n", "baseline", "litefs", "ratio", "note"], ...rows.map((x) => [x.what, x.n, x.baseline, x.litefs, x.ratio === null ? "-" : `${x.ratio.toFixed(2)}x`, x.note ?? ""])]));
  for (const p of r.problems) console.log(`note: ${p}`);
  console.log(`\ntotal ${r.seconds.toFixed(0)} s`);
  if (r.problems.length) process.exitCode = 1;
}

if (isMain(import.meta.url)) {
  runScaleBench(parseScaleArgs(process.argv.slice(2)))
    .then(report)
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
