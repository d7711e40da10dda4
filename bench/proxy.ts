/**
 * Application proxy benchmark: the latency the proxy (src/proxy/) adds to a request, in one run:
 *
 *  (1) reads: GET /rows/:id through the primary's proxy vs straight to the primary's app;
 *  (2) forwarded writes: POST /rows (one INSERT) to a replica's proxy, which forwards it to the
 *      primary's proxy, which passes it to the primary's app, vs POSTing to the primary's app;
 *  (3) local writes: POST /rows through the primary's own proxy vs straight to its app.
 *
 * Requests are sequential, one at a time, over keep-alive connections (undici), after a warm-up.
 * The paths of a measurement are interleaved: request i of every path runs back to back, the
 * order rotating with i, so a machine whose speed drifts during the run slows all paths alike;
 * ratios and added milliseconds only ever compare numbers taken in the same run. "paired" is the
 * median over i of (proxied_i - direct_i), which cancels the drift best.
 *
 *   npm run bench:proxy                      (builds, then runs dist/bench/proxy.js)
 *   node dist/bench/proxy.js --quick         (a tenth of the requests, for a smoke test)
 *   node dist/bench/proxy.js --reads 2000 --writes 1000 --warmup 200 --keep
 *
 * Two real `litefs mount` processes on loopback (static lease; bench/support/cluster-node.ts),
 * each with `proxy.db: app.db` in front of its own web app (test/support/programs/web-app.mjs,
 * one process per node, writing app.db on that node's mount with better-sqlite3). Every process
 * started here is stopped by PID and every mount detached on exit, also on failure or Ctrl-C.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { Agent, request } from "undici";

import { ClusterNode, freePort } from "./support/cluster-node.js";
import { ROOT, forceUnmount, sleep } from "./support/daemon.js";
import { parseBenchArgs } from "./support/args.js";
import { isMain, type BenchRow } from "./support/report.js";

export interface ProxyArgs {
  reads: number;
  writes: number;
  warmup: number;
  keep: boolean;
}

export function parseProxyArgs(argv: string[]): ProxyArgs {
  return parseBenchArgs<ProxyArgs>(argv, {
    defaults: { reads: 2000, writes: 1000, warmup: 200, keep: false },
    quick: { reads: 200, writes: 100, warmup: 30 },
    numbers: { "--reads": "reads", "--writes": "writes", "--warmup": "warmup" },
    integers: true,
  });
}

const DB = "app.db";
const WEB_APP = path.join(ROOT, "test/support/programs/web-app.mjs");
const NOTE = "x".repeat(60);

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");

// ---- processes ----------------------------------------------------------------------------------

/** One web app process (never this process: it must not share a process with a FUSE server). */
class WebApp {
  private proc: ChildProcess | null = null;
  private logs = "";

  constructor(
    readonly port: number,
    readonly name: string,
    readonly dbPath: string,
  ) {}

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(timeoutMs = 15_000): Promise<void> {
    const proc = spawn(process.execPath, [WEB_APP, String(this.port), this.name, this.dbPath], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stdout!.on("data", (d) => (this.logs += d.toString()));
    proc.stderr!.on("data", (d) => (this.logs += d.toString()));
    const deadline = Date.now() + timeoutMs;
    while (!this.logs.includes(`listening ${this.port}`)) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`web app ${this.name} exited: ${this.logs}`);
      if (Date.now() > deadline) throw new Error(`web app ${this.name} did not listen within ${timeoutMs} ms: ${this.logs}`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGTERM");
    const timer = sleep(10_000).then(() => "timeout");
    if ((await Promise.race([exited, timer])) === "timeout") {
      proc.kill("SIGKILL");
      await exited;
    }
  }
}

/** A LiteFS node with its proxy in front of its own web app. */
interface ProxiedNode {
  node: ClusterNode;
  app: WebApp;
  proxy: string;
}

async function makeNode(root: string, hostname: string, candidate: boolean, httpPort: number, primaryUrl: string): Promise<ProxiedNode> {
  const proxyPort = await freePort();
  const appPort = await freePort();
  const node = new ClusterNode(path.join(root, hostname), {
    hostname,
    candidate,
    httpPort,
    primaryUrl,
    extraYaml: ["proxy:", `  addr: "127.0.0.1:${proxyPort}"`, `  target: "127.0.0.1:${appPort}"`, `  db: ${DB}`],
  });
  return { node, app: new WebApp(appPort, hostname, node.db(DB)), proxy: `http://127.0.0.1:${proxyPort}` };
}

// ---- HTTP ---------------------------------------------------------------------------------------

/** One keep-alive connection per origin (requests are sequential). */
const agent = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, connections: 4 });

interface Answer {
  status: number;
  body: string;
  setCookie: string[];
  ms: number;
}

async function call(url: string, method: "GET" | "POST", body?: string, cookie?: string): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (cookie) headers.cookie = cookie;
  if (body !== undefined) headers["content-type"] = "text/plain";
  const t0 = nowMs();
  const res = await request(url, { dispatcher: agent, method, headers, body });
  const text = await res.body.text();
  const ms = nowMs() - t0;
  const sc = res.headers["set-cookie"];
  return { status: res.statusCode, body: text, setCookie: sc === undefined ? [] : [sc].flat(), ms };
}

function txidCookie(setCookie: string[]): string | undefined {
  for (const c of setCookie) {
    const m = /^__txid=([^;]*)/.exec(c);
    if (m) return `__txid=${m[1]}`;
  }
  return undefined;
}

async function waitForProxyHealth(n: ProxiedNode, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await call(`${n.proxy}/litefs/health`, "GET");
      if (res.status === 200) return;
      last = `${res.status} ${res.body.trim()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`the proxy of ${n.node.opts.hostname} did not answer 200 on /litefs/health within ${timeoutMs} ms (last: ${last})\n${await n.node.logTail(3000)}`);
}

// ---- measurement --------------------------------------------------------------------------------

/** One way of sending a request: `send(i)` runs request i and says what went wrong, if anything. */
interface Path {
  label: string;
  send(i: number): Promise<{ ms: number; problem?: string }>;
}

export interface Series {
  label: string;
  /** Latency of request i, NaN when it failed. */
  ms: number[];
  problems: string[];
}

/** `count` rounds; in round i every path sends request i, starting with path i mod paths.length. */
async function interleave(paths: Path[], count: number, isStopped: () => boolean): Promise<Series[]> {
  const series: Series[] = paths.map((p) => ({ label: p.label, ms: new Array<number>(count).fill(NaN), problems: [] }));
  for (let i = 0; i < count && !isStopped(); i++) {
    for (let k = 0; k < paths.length; k++) {
      const j = (i + k) % paths.length;
      try {
        const r = await paths[j].send(i);
        if (r.problem) series[j].problems.push(r.problem);
        else series[j].ms[i] = r.ms;
      } catch (err) {
        series[j].problems.push((err as Error).message);
      }
    }
  }
  return series;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

interface Stats {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

function stats(ms: number[]): Stats {
  const ok = ms.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return { n: ok.length, p50: percentile(ok, 50), p99: percentile(ok, 99), mean: ok.reduce((a, b) => a + b, 0) / ok.length };
}

/** Median over i of proxied_i - direct_i (rounds where both succeeded). */
function pairedMedian(proxied: number[], direct: number[]): number {
  const d: number[] = [];
  for (let i = 0; i < proxied.length; i++) if (Number.isFinite(proxied[i]) && Number.isFinite(direct[i])) d.push(proxied[i] - direct[i]);
  d.sort((a, b) => a - b);
  return percentile(d, 50);
}

function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" | ") + " |";
  const sep = "|" + widths.map((w, i) => (right[i] ? "-".repeat(w + 1) + ":" : ":" + "-".repeat(w + 1))).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

// ---- main ---------------------------------------------------------------------------------------

export interface ProxyBenchResult {
  /** Reads: direct first, then through the proxy. */
  reads: Series[] | null;
  /** Writes: direct first, then forwarded from the replica, then through the primary's proxy. */
  writes: Series[] | null;
  problems: string[];
  seconds: number;
}

/** Measures reads and writes, direct and proxied, on a fresh two-node cluster; Ctrl-C cleans up and exits 130. */
export async function runProxyBench(args: ProxyArgs): Promise<ProxyBenchResult> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "litefs-bench-proxy-"));
  const nodes: ProxiedNode[] = [];
  let interrupted = false;
  let cleaned: Promise<void> | null = null;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const n of nodes) await n.app.stop().catch((err: Error) => console.error(`stopping web app ${n.app.name}: ${err.message}`));
      for (const n of nodes) await n.node.stop().catch(() => forceUnmount(n.node.mnt));
      await agent.close().catch(() => undefined);
      if (!args.keep) await fsp.rm(root, { recursive: true, force: true }).catch(() => undefined);
      else console.log(`kept ${root}`);
    })());
  const onSigint = () => {
    interrupted = true;
    console.error("interrupted: stopping the web apps and daemons");
    cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSigint);
  const stopped = () => interrupted;

  const started = Date.now();
  const problems: string[] = [];
  let reads: Series[] | null = null;
  let writes: Series[] | null = null;
  try {
    console.log(`cluster: primary + 1 replica, proxy.db ${DB}, under ${root}`);
    const apiPort = await freePort();
    const primaryUrl = `http://127.0.0.1:${apiPort}`;
    const primary = await makeNode(root, "primary", true, apiPort, primaryUrl);
    nodes.push(primary);
    const replica = await makeNode(root, "replica0", false, await freePort(), primaryUrl);
    nodes.push(replica);
    for (const n of nodes) {
      await n.node.start();
      await n.app.start();
    }
    for (const n of nodes) await waitForProxyHealth(n);

    // The primary creates app.db (through its proxy, which sets the cookie readers send).
    const first = await call(`${primary.proxy}/rows`, "POST", NOTE);
    if (first.status !== 201) throw new Error(`first write through the primary's proxy: ${first.status} ${first.body}`);
    const cookie = txidCookie(first.setCookie);
    if (!cookie) problems.push(`a write through the primary's proxy came back without a __txid cookie (Set-Cookie: ${JSON.stringify(first.setCookie)})`);

    // Rows the reads fetch: the ids the warm-up writes insert.
    const rowIds: number[] = [JSON.parse(first.body).id as number];
    const writeVia = (label: string, url: string, wantCookie: boolean): Path => ({
      label,
      async send() {
        const r = await call(url, "POST", NOTE);
        if (r.status !== 201) return { ms: r.ms, problem: `${r.status} ${r.body.trim().slice(0, 200)}` };
        const row = JSON.parse(r.body) as { id: number; node: string };
        if (row.node !== "primary") return { ms: r.ms, problem: `written by ${row.node}, not the primary` };
        if (wantCookie && !txidCookie(r.setCookie)) return { ms: r.ms, problem: "no __txid cookie in the answer" };
        if (rowIds.length < 1000) rowIds.push(row.id);
        return { ms: r.ms };
      },
    });
    const writePaths = [
      writeVia("write, primary app direct", `${primary.app.origin}/rows`, false),
      writeVia("write, replica proxy -> primary proxy -> app", `${replica.proxy}/rows`, true),
      writeVia("write, primary proxy -> app", `${primary.proxy}/rows`, true),
    ];
    const readVia = (label: string, origin: string): Path => ({
      label,
      async send(i) {
        const id = rowIds[i % rowIds.length];
        const r = await call(`${origin}/rows/${id}`, "GET", undefined, cookie);
        if (r.status !== 200) return { ms: r.ms, problem: `GET /rows/${id}: ${r.status} ${r.body.trim().slice(0, 200)}` };
        return { ms: r.ms };
      },
    });
    const readPaths = [readVia("read, primary app direct", primary.app.origin), readVia("read, primary proxy -> app", primary.proxy)];

    console.log(`warm-up: ${args.warmup} rounds of writes and of reads`);
    const warm = [...(await interleave(writePaths, args.warmup, stopped)), ...(await interleave(readPaths, args.warmup, stopped))];
    for (const s of warm) if (s.problems.length) throw new Error(`warm-up, ${s.label}: ${s.problems.length} failed, first: ${s.problems[0]}`);

    if (!interrupted) {
      console.log(`(1) reads: ${args.reads} rounds of GET /rows/:id, direct and through the primary's proxy, alternating`);
      reads = await interleave(readPaths, args.reads, stopped);
    }
    if (!interrupted) {
      console.log(`(2)+(3) writes: ${args.writes} rounds of POST /rows, direct, via the replica's proxy and via the primary's proxy, rotating`);
      writes = await interleave(writePaths, args.writes, stopped);
    }

    // Read-your-writes on the replica, once: the cookie of a forwarded write, then a read there.
    if (!interrupted) {
      const w = await call(`${replica.proxy}/rows`, "POST", NOTE);
      const c = txidCookie(w.setCookie);
      const id = w.status === 201 ? (JSON.parse(w.body) as { id: number }).id : NaN;
      const r = await call(`${replica.proxy}/rows/${id}`, "GET", undefined, c);
      const node = r.status === 200 ? (JSON.parse(r.body) as { node: string }).node : "";
      if (w.status !== 201 || !c || r.status !== 200 || node !== "replica0") {
        problems.push(`read-your-writes on the replica failed: write ${w.status} (cookie ${c ?? "none"}), read ${r.status} from ${node || "?"}: ${r.body.trim().slice(0, 200)}`);
      }
    }
  } catch (err) {
    problems.push(`setup: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (!interrupted) await cleanup();
    process.off("SIGINT", onSigint);
  }
  return { reads, writes, problems, seconds: (Date.now() - started) / 1000 };
}

/** The rows of `npm run bench`: each proxied path against the direct one (p50, and the paired median added). */
export function proxyRows(r: ProxyBenchResult): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const group of [r.reads, r.writes]) {
    if (!group) continue;
    const direct = group[0];
    const d = stats(direct.ms);
    for (const s of group.slice(1)) {
      const st = stats(s.ms);
      rows.push({
        group: "proxy",
        key: `proxy.${s.label.replace(/[^a-z]+/g, "-").replace(/^-|-$/g, "")}`,
        what: `${s.label} (baseline: ${direct.label.replace(/^(read|write), /, "")})`,
        n: `${fmtInt(st.n)} req`,
        baseline: `p50 ${fmt(d.p50)} ms, p99 ${fmt(d.p99)} ms`,
        litefs: `p50 ${fmt(st.p50)} ms, p99 ${fmt(st.p99)} ms`,
        ratio: st.p50 / d.p50,
        note: `paired +${fmt(pairedMedian(s.ms, direct.ms))} ms${s.problems.length ? `; ${s.problems.length} failed` : ""}`,
        values: { directP50Ms: d.p50, directP99Ms: d.p99, p50Ms: st.p50, p99Ms: st.p99, pairedMs: pairedMedian(s.ms, direct.ms), failed: s.problems.length },
      });
    }
  }
  return rows;
}

function report(result: ProxyBenchResult): void {
  const { reads, writes } = result;
  const problems = [...result.problems];
  console.log("");
  console.log(`Node ${process.version}, ${os.cpus().length} cores, ${os.platform()} ${os.release()}; sequential requests over keep-alive (undici)`);
  console.log("");
  const rows: string[][] = [];
  const add = (group: Series[]) => {
    const direct = group[0];
    const d = stats(direct.ms);
    for (const s of group) {
      const st = stats(s.ms);
      const vs = (a: number, b: number) => (s === direct ? "-" : `x${fmt(a / b)} (${a - b >= 0 ? "+" : ""}${fmt(a - b)})`);
      rows.push([
        s.label,
        fmtInt(st.n),
        fmt(st.p50),
        fmt(st.p99),
        fmt(st.mean),
        vs(st.p50, d.p50),
        vs(st.p99, d.p99),
        s === direct ? "-" : `${fmt(pairedMedian(s.ms, direct.ms))}`,
      ]);
      if (s.problems.length) problems.push(`${s.label}: ${s.problems.length} failed, first: ${s.problems[0]}`);
    }
  };
  if (reads) add(reads);
  if (writes) add(writes);
  if (rows.length) {
    console.log(
      table(
        ["path", "n", "p50 ms", "p99 ms", "mean ms", "p50 vs direct (+ms)", "p99 vs direct (+ms)", "paired +ms (median)"],
        rows,
        [false, true, true, true, true, true, true, true],
      ),
    );
  }
  for (const p of problems) console.log(`note: ${p}`);
  console.log(`\ntotal ${fmt(result.seconds, 0)} s`);
  if (!reads || !writes) process.exitCode = 1;
}

if (isMain(import.meta.url)) {
  runProxyBench(parseProxyArgs(process.argv.slice(2)))
    .then(report)
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
