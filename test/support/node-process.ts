import { spawn, execFile, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const CLI = path.join(ROOT, "dist/src/cli/main.js");

const execFileAsync = promisify(execFile);

/** A temporary folder whose name global-setup recognises (to unmount leftovers of a crash). */
export async function makeTempDir(label: string): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), `litefs-test-${label}-`));
}

export interface NodeConfig {
  /** Extra YAML appended to the generated config. */
  extraYaml?: string;
  /** fuse.busy-poll (a duration); unset: the default. */
  busyPoll?: string;
  /** fuse.debug: libfuse prints every request to the daemon's stderr (in `logs`). */
  fuseDebug?: boolean;
  candidate?: boolean;
  compress?: boolean;
  retention?: string;
  retentionMonitorInterval?: string;
  httpPort?: number;
  /** Advertise URL of the primary (replicas stream from it); defaults to this node's own. */
  primaryUrl?: string;
  hostname?: string;
  token?: string;
  /** http.tls: PEM files (the API then speaks https, and default URLs are https). */
  tls?: { cert: string; key: string; ca?: string };
  databases?: string[];
  /** Use a Consul lease at this URL (the test double) instead of a static one. */
  consulUrl?: string;
  promote?: boolean;
  /** Consul lease: the URL this node advertises (default: its own API port). */
  advertiseUrl?: string;
  /** Extra environment for the daemon (e.g. LITEFS_TEST_HOOKS=1). */
  env?: Record<string, string>;
  /**
   * Run the daemon in this network namespace (test/support/netns.ts), listening on every address
   * there; the test reaches its API at `ip`, and so do the other nodes.
   */
  netns?: { name: string; ip: string };
}

/** The address a node's API is reached at from the test (its namespace's, or loopback). */
export function nodeAddress(config: NodeConfig): string {
  return config.netns?.ip ?? "127.0.0.1";
}

/**
 * One `litefs mount` process with its own data dir and mount, started from the built CLI.
 * Only processes started here are ever killed, by PID.
 */
export class LitefsNode {
  proc: ChildProcess | null = null;
  logs = "";
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  readonly mnt: string;
  readonly dataDir: string;
  readonly configPath: string;

  constructor(
    readonly dir: string,
    readonly config: NodeConfig = {},
  ) {
    this.mnt = path.join(dir, "mnt");
    this.dataDir = path.join(dir, "data");
    this.configPath = path.join(dir, "litefs.yml");
  }

  static async create(label: string, config: NodeConfig = {}): Promise<LitefsNode> {
    const node = new LitefsNode(await makeTempDir(label), config);
    await node.writeConfig();
    return node;
  }

  async writeConfig(): Promise<void> {
    const c = this.config;
    const scheme = c.tls ? "https" : "http";
    const yaml = [
      "fuse:",
      `  dir: ${this.mnt}`,
      ...(c.busyPoll !== undefined ? [`  busy-poll: "${c.busyPoll}"`] : []),
      ...(c.fuseDebug ? ["  debug: true"] : []),
      "data:",
      `  dir: ${this.dataDir}`,
      `  compress: ${c.compress ?? true}`,
      ...(c.retention ? [`  retention: ${c.retention}`] : []),
      ...(c.retentionMonitorInterval ? [`  retention-monitor-interval: ${c.retentionMonitorInterval}`] : []),
      "http:",
      `  addr: "${c.netns ? "0.0.0.0" : "127.0.0.1"}:${c.httpPort ?? 0}"`,
      ...(c.token ? [`  token: "${c.token}"`] : []),
      ...(c.tls ? ["  tls:", `    cert: ${c.tls.cert}`, `    key: ${c.tls.key}`, ...(c.tls.ca ? [`    ca: ${c.tls.ca}`] : [])] : []),
      "lease:",
      ...(c.consulUrl
        ? [
            "  type: consul",
            `  advertise-url: ${c.advertiseUrl ?? `${scheme}://${nodeAddress(c)}:${c.httpPort}`}`,
            "  consul:",
            `    url: ${c.consulUrl}`,
            "    key: litefs/test",
            "    ttl: 10s",
            "    lock-delay: 1s",
          ]
        : ["  type: static", `  advertise-url: ${c.primaryUrl ?? `${scheme}://${nodeAddress(c)}:${c.httpPort ?? 20202}`}`]),
      `  candidate: ${c.candidate ?? true}`,
      `  hostname: ${c.hostname ?? "node"}`,
      ...(c.promote ? ["  promote: true"] : []),
      "  reconnect-delay: 200ms",
      ...(c.databases ? ["  databases:", ...c.databases.map((d) => `    - ${d}`)] : []),
      c.extraYaml ?? "",
    ].join("\n");
    await fsp.writeFile(this.configPath, yaml + "\n");
  }

  /** The running daemon's process ID (undefined when it is not running). */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the daemon and waits until the mount answers. */
  async start(args: string[] = [], opts: { waitForMount?: boolean } = {}): Promise<void> {
    this.logs = "";
    const argv = [process.execPath, CLI, "mount", "-config", this.configPath, ...args];
    // nsenter --net switches only the network namespace and execs (same PID): the mount stays visible here.
    if (this.config.netns) argv.unshift("nsenter", `--net=/run/netns/${this.config.netns.name}`);
    const proc = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...this.config.env },
    });
    this.proc = proc;
    proc.stdout!.on("data", (d) => (this.logs += d.toString()));
    proc.stderr!.on("data", (d) => (this.logs += d.toString()));
    this.exit = new Promise((resolve) =>
      proc.once("exit", (code, signal) => {
        // In the logs too, so a failure's output shows a daemon that died (and of what).
        this.logs += `\n[test] litefs (pid ${proc.pid}) exited: code=${code} signal=${signal}\n`;
        resolve({ code, signal });
      }),
    );
    if (opts.waitForMount === false) return;
    await this.waitForMount();
  }

  async waitForMount(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined) {
        throw new Error(`litefs exited with ${this.proc.exitCode} before mounting:\n${this.logs}`);
      }
      if (isMounted(this.mnt) && this.logs.includes("mounted")) return;
      await sleep(50);
    }
    throw new Error(`mount did not appear within ${timeoutMs} ms:\n${this.logs}`);
  }

  /** SIGTERM and wait for a clean exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const proc = this.proc;
    if (!proc || !this.exit) return { code: null, signal: null };
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    const result = await withTimeout(this.exit, 20_000, "litefs did not exit after SIGTERM");
    this.proc = null;
    await forceUnmount(this.mnt);
    return result;
  }

  /** kill -9: the daemon gets no chance to clean up; the stale mount is detached. */
  async kill9(): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.exit) return;
    proc.kill("SIGKILL");
    await this.exit;
    this.proc = null;
    await forceUnmount(this.mnt);
  }

  async cleanup(): Promise<void> {
    if (this.proc) await this.kill9().catch(() => undefined);
    await forceUnmount(this.mnt);
    await fsp.rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  db(name: string): string {
    return path.join(this.mnt, name);
  }

  ltxDir(name: string): string {
    return path.join(this.dataDir, "dbs", name, "ltx");
  }

  async ltxFiles(name: string): Promise<string[]> {
    try {
      return (await fsp.readdir(this.ltxDir(name))).filter((f) => f.endsWith(".ltx")).sort();
    } catch {
      return [];
    }
  }

  async pos(name: string): Promise<string> {
    return (await fsp.readFile(path.join(this.mnt, `${name}-pos`), "utf8")).trim();
  }
}

/** A TCP port nothing listens on right now (bound and released). */
/**
 * A TCP port nothing listens on right now, for a server a test starts later. Picked below the
 * kernel's ephemeral range (32768-60999): a port from inside it can be taken meanwhile as the
 * source port of any client connection (the proxy tests open thousands), and the server then
 * fails with EADDRINUSE. Random, so parallel test files rarely pick the same one; bound and
 * released here to check it is free.
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 22_000);
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export function isMounted(dir: string): boolean {
  const mounts = fs.readFileSync("/proc/self/mounts", "utf8");
  return mounts.split("\n").some((l) => l.split(" ")[1] === dir);
}

export async function forceUnmount(dir: string): Promise<void> {
  if (!isMounted(dir)) return;
  await execFileAsync("fusermount", ["-u", "-z", dir]).catch(() => execFileAsync("umount", ["-l", dir]).catch(() => undefined));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
