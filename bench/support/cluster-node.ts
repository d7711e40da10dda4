/**
 * One node of a benchmark cluster: a `litefs mount` process on loopback with its own data dir,
 * mount and HTTP port, static lease (the candidate is the primary, the others stream from its
 * advertise URL). Like BenchDaemon (daemon.ts) it logs to a file, stops with SIGTERM, and always
 * detaches its mount, even on error. Only processes started here are ever killed, by PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as net from "node:net";
import * as path from "node:path";

import { CLI, forceUnmount, isMounted, sleep } from "./daemon.js";

export interface ClusterNodeOptions {
  hostname: string;
  candidate: boolean;
  httpPort: number;
  /** The primary's advertise URL (the same on every node). */
  primaryUrl: string;
  /** data.retention; long by default so catch-up is served from LTX files, not a snapshot. */
  retention?: string;
}

export class ClusterNode {
  readonly mnt: string;
  readonly dataDir: string;
  readonly configPath: string;
  readonly logPath: string;
  private proc: ChildProcess | null = null;
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;

  constructor(
    readonly dir: string,
    readonly opts: ClusterNodeOptions,
  ) {
    this.mnt = path.join(dir, "mnt");
    this.dataDir = path.join(dir, "data");
    this.configPath = path.join(dir, "litefs.yml");
    this.logPath = path.join(dir, "litefs.log");
  }

  get running(): boolean {
    return this.proc !== null;
  }

  db(name: string): string {
    return path.join(this.mnt, name);
  }

  /** Starts the daemon and resolves once the mount answers (a replica may still be catching up). */
  async start(timeoutMs = 60_000): Promise<void> {
    const o = this.opts;
    const yaml = [
      "fuse:",
      `  dir: ${this.mnt}`,
      "data:",
      `  dir: ${this.dataDir}`,
      `  retention: ${o.retention ?? "1h"}`,
      "http:",
      `  addr: "127.0.0.1:${o.httpPort}"`,
      "lease:",
      "  type: static",
      `  candidate: ${o.candidate}`,
      `  hostname: ${o.hostname}`,
      `  advertise-url: ${o.primaryUrl}`,
      "  reconnect-delay: 200ms",
    ].join("\n");
    await fsp.mkdir(this.dir, { recursive: true });
    await fsp.writeFile(this.configPath, yaml + "\n");

    const logFd = fs.openSync(this.logPath, "a");
    try {
      // LITEFS_BENCH_CPU_PROF=<dir>: profile every daemon (node --cpu-prof), one file per process.
      const prof = process.env.LITEFS_BENCH_CPU_PROF;
      const nodeArgs = prof ? ["--cpu-prof", "--cpu-prof-dir", path.join(prof, o.hostname)] : [];
      const proc = spawn(process.execPath, [...nodeArgs, CLI, "mount", "-config", this.configPath], { stdio: ["ignore", logFd, logFd], env: { ...process.env } });
      this.proc = proc;
      this.exit = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    } finally {
      fs.closeSync(logFd); // the child holds its own copy
    }
    const logStart = this.logSize();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc?.exitCode !== null) throw new Error(`${o.hostname}: litefs exited with ${this.proc?.exitCode} before mounting:\n${await this.logTail()}`);
      if ((await isMounted(this.mnt)) && /\bmounted\b/.test(await this.logSince(logStart))) return;
      await sleep(20);
    }
    throw new Error(`${o.hostname}: mount did not appear within ${timeoutMs} ms:\n${await this.logTail()}`);
  }

  async stop(timeoutMs = 30_000): Promise<void> {
    const proc = this.proc;
    if (proc && this.exit) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs).unref());
      if ((await Promise.race([this.exit, timer])) === null) {
        proc.kill("SIGKILL");
        await this.exit;
      }
      this.proc = null;
    }
    await forceUnmount(this.mnt);
  }

  /** The database's position (`<db>-pos`), or null while it has none. */
  async pos(name: string): Promise<string | null> {
    try {
      return (await fsp.readFile(path.join(this.mnt, `${name}-pos`), "utf8")).trim();
    } catch {
      return null;
    }
  }

  logSize(): number {
    try {
      return fs.statSync(this.logPath).size;
    } catch {
      return 0;
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

/** A TCP port nothing listens on right now (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Primary plus replicas, each in its own folder under `root`. */
export async function startCluster(root: string, replicaCount: number): Promise<{ primary: ClusterNode; replicas: ClusterNode[] }> {
  const port = await freePort();
  const primaryUrl = `http://127.0.0.1:${port}`;
  const primary = new ClusterNode(path.join(root, "primary"), { hostname: "primary", candidate: true, httpPort: port, primaryUrl });
  const replicas: ClusterNode[] = [];
  for (let i = 0; i < replicaCount; i++) {
    replicas.push(new ClusterNode(path.join(root, `replica${i}`), { hostname: `replica${i}`, candidate: false, httpPort: await freePort(), primaryUrl }));
  }
  await primary.start();
  for (const r of replicas) await r.start();
  return { primary, replicas };
}
