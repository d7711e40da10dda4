/**
 * A `litefs mount` daemon in its own process, for benchmarks: started from the built CLI like
 * the test harness does (test/support/node-process.ts), with its stdout and stderr written to a
 * log file (so that `-fuse.debug` output can be counted afterwards), stopped with SIGTERM, and
 * always detached (`fusermount -u -z`) so nothing stays mounted, even on error.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const ROOT = path.resolve(import.meta.dirname, "../../..");
/** LITEFS_BENCH_CLI: another build to compare against (e.g. the main branch's dist/src/cli/main.js). */
export const CLI = process.env.LITEFS_BENCH_CLI ?? path.join(ROOT, "dist/src/cli/main.js");

export interface DaemonOptions {
  /** Run the daemon with `-fuse.debug` (every FUSE request is logged; slows it down a lot). */
  fuseDebug?: boolean;
  /** Run the daemon under `node --cpu-prof`, writing the profile into this folder on exit. */
  cpuProfDir?: string;
  /**
   * `skip-sync: true`: the daemon does not fsync LTX files and their folder. Not durable; only
   * to measure what that durability costs per commit.
   */
  skipSync?: boolean;
  /** fuse.busy-poll (a duration such as "0" or "50us"); unset: the daemon's default. */
  busyPoll?: string;
  /** The config after `fuse:` and `data:` (http, lease); default: a single static primary. */
  config?: string[];
  /** data.retention; long by default so no LTX file goes away while a benchmark counts them. */
  retention?: string;
  /** data.retention-monitor-interval (default: the daemon's). */
  retentionMonitorInterval?: string;
  /** Names the node in error messages (several daemons in one benchmark). */
  label?: string;
  /** More lines under `data:` (e.g. `  retention-monitor-interval: 1s`). */
  dataYaml?: string[];
}

const SINGLE_PRIMARY = ["http:", `  addr: "127.0.0.1:0"`, "lease:", "  type: static", "  candidate: true", "  advertise-url: http://127.0.0.1:20202"];

export class BenchDaemon {
  readonly mnt: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly logPath: string;
  private proc: ChildProcess | null = null;
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(
    readonly dir: string,
    private readonly daemonOpts: DaemonOptions = {},
  ) {
    this.mnt = path.join(dir, "mnt");
    this.dataDir = path.join(dir, "data");
    this.configPath = path.join(dir, "litefs.yml");
    this.logPath = path.join(dir, "litefs.log");
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /** The daemon's process id while it runs. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** SIGKILL (a crash), wait for the exit, detach the mount the daemon left behind. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    if (proc && this.exit) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await this.exit;
      this.proc = null;
    }
    await forceUnmount(this.mnt);
  }

  db(name: string): string {
    return path.join(this.mnt, name);
  }

  /** Starts the daemon (again, after a stop) and resolves once the mount answers. */
  async start(timeoutMs = 60_000): Promise<void> {
    const o = this.daemonOpts;
    const label = o.label ? `${o.label}: ` : "";
    const yaml = [
      "fuse:",
      `  dir: ${this.mnt}`,
      ...(o.busyPoll !== undefined ? [`  busy-poll: ${JSON.stringify(o.busyPoll)}`] : []),
      "data:",
      `  dir: ${this.dataDir}`,
      `  retention: ${o.retention ?? "1h"}`,
      ...(o.retentionMonitorInterval ? [`  retention-monitor-interval: ${o.retentionMonitorInterval}`] : []),
      ...(o.dataYaml ?? []),
      ...(o.config ?? SINGLE_PRIMARY),
      ...(o.skipSync ? ["skip-sync: true"] : []),
    ].join("\n");
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.writeFile(this.configPath, yaml + "\n");

    // Appended to, so a restarted node keeps its earlier log and offsets stay meaningful.
    const logFd = fs.openSync(this.logPath, "a");
    const nodeArgs = o.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", o.cpuProfDir] : [];
    const args = [...nodeArgs, CLI, "mount", "-config", this.configPath, ...(o.fuseDebug ? ["-fuse.debug"] : [])];
    try {
      const proc = spawn(process.execPath, args, { stdio: ["ignore", logFd, logFd], env: { ...process.env } });
      this.proc = proc;
      this.exit = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    } finally {
      fs.closeSync(logFd); // the child holds its own copy
    }

    const logStart = this.logSize();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc?.exitCode !== null) throw new Error(`${label}litefs exited with ${this.proc?.exitCode} before mounting:\n${await this.logTail()}`);
      if ((await isMounted(this.mnt)) && /\bmounted\b/.test(await this.logSince(logStart))) return;
      await sleep(20);
    }
    throw new Error(`${label}mount did not appear within ${timeoutMs} ms:\n${await this.logTail()}`);
  }

  /** SIGTERM, wait for the exit, then make sure the mount is gone. */
  async stop(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
    const proc = this.proc;
    let result: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    if (proc && this.exit) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs).unref());
      result = await Promise.race([this.exit, timer]);
      if (result === null) {
        proc.kill("SIGKILL");
        await this.exit;
      }
      this.proc = null;
    }
    await forceUnmount(this.mnt);
    return result;
  }

  /** Where a workload looks to count LTX files, TXIDs and debug-log bytes (see `takeSnapshot`). */
  get probe(): Probe {
    return { mnt: this.mnt, dataDir: this.dataDir, logPath: this.logPath };
  }

  logSize(): number {
    return fileSize(this.logPath);
  }

  /** The database's position (`<db>-pos`), or null while it has none. */
  async pos(name: string): Promise<string | null> {
    try {
      return (await fsp.readFile(path.join(this.mnt, `${name}-pos`), "utf8")).trim();
    } catch {
      return null;
    }
  }

  async logSince(offset: number): Promise<string> {
    try {
      const fh = await fsp.open(this.logPath, "r");
      try {
        const size = (await fh.stat()).size;
        const buf = Buffer.alloc(Math.max(0, size - offset));
        await fh.read(buf, 0, buf.length, offset);
        return buf.toString("utf8");
      } finally {
        await fh.close();
      }
    } catch {
      return "";
    }
  }

  async logTail(bytes = 8192): Promise<string> {
    return this.logSince(Math.max(0, this.logSize() - bytes));
  }
}

export async function isMounted(dir: string): Promise<boolean> {
  const mounts = await fsp.readFile("/proc/self/mounts", "utf8");
  const escaped = dir.replace(/ /g, "\\040");
  return mounts.split("\n").some((l) => l.split(" ")[1] === escaped);
}

export async function forceUnmount(dir: string): Promise<void> {
  if (!(await isMounted(dir))) return;
  await execFileAsync("fusermount", ["-u", "-z", dir]).catch(() => execFileAsync("umount", ["-l", dir]).catch(() => undefined));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface Probe {
  mnt: string;
  dataDir: string;
  logPath: string;
}

export interface Snapshot {
  /** LTX files of the database in the data dir. */
  ltx: number;
  /** The database's TXID from `<db>-pos` on the mount (0 if it has none yet). */
  txid: number;
  /** Bytes in the daemon's log (to cut `-fuse.debug` output into per-workload pieces). */
  logSize: number;
}

/**
 * Synchronous, so that a workload can take it right before its measured section. Safe: the
 * processes that call it never serve the mount (the daemon is another process).
 */
export function takeSnapshot(probe: Probe, db: string): Snapshot {
  let ltx = 0;
  try {
    ltx = fs.readdirSync(path.join(probe.dataDir, "dbs", db, "ltx")).filter((f) => f.endsWith(".ltx")).length;
  } catch {
    // no LTX folder yet
  }
  let txid = 0;
  try {
    txid = parseInt(fs.readFileSync(path.join(probe.mnt, `${db}-pos`), "utf8").trim().split("/")[0] ?? "0", 16);
  } catch {
    // no position yet
  }
  return { ltx, txid, logSize: fileSize(probe.logPath) };
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}
