import { spawnSync } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { ApplyAgent } from "../fuse/apply-agent.js";
import { runDemotionRepair } from "../fuse/demotion-repair.js";
import { FileSystem } from "../fuse/file-system.js";
import { FuseMount } from "../fuse/mount.js";
import { ApiServer, HttpError, sendJson } from "../http/server.js";
import type { Leaser } from "../lease/index.js";
import { readClusterId } from "../store/cluster-id.js";
import { createLeaser } from "./leaser.js";
import { RoleManager } from "./role.js";
import { Store } from "../store/store.js";

export interface DaemonOptions {
  config: Config;
  log: Logger;
  skipUnmount?: boolean;
  fuseDebug?: boolean;
}

/**
 * A running node: the Store, its FUSE mount, the cluster API and, on a replica, the stream from
 * the primary, all in this one process.
 *
 * Process model (DESIGN.md section 3): this process never opens files on its own mount.
 * Whatever must go through the mount (applying replicated pages under SQLite's locks) runs in
 * the apply agent, a child process that never spawns; so this process may start the app and
 * the agent at any time without an inherited mount file deadlocking the spawn.
 */
export class Daemon {
  readonly store: Store;
  private mount: FuseMount | null = null;
  private api: ApiServer | null = null;
  private agent: ApplyAgent | null = null;
  private role: RoleManager | null = null;
  private leaser: Leaser | null = null;
  private stopped = false;

  constructor(private readonly opts: DaemonOptions) {
    const { config, log } = opts;
    this.store = new Store({
      dataDir: config.data.dir,
      compress: config.data.compress,
      skipSync: config.skipSync,
      retentionMs: config.data.retentionMs,
      retentionMonitorIntervalMs: config.data.retentionMonitorIntervalMs,
      logger: log,
    });
  }

  get config(): Config {
    return this.opts.config;
  }

  /** The cluster API's bound port (useful when http.addr asks for port 0). */
  get httpPort(): number | null {
    return this.api?.port ?? null;
  }

  /** Recovers the databases, starts the API, mounts, then runs the lease loop. */
  async start(): Promise<void> {
    const { config, log } = this.opts;
    this.store.open();

    this.api = new ApiServer({
      addr: config.http.addr,
      token: config.http.token,
      store: this.store,
      log,
      hostname: config.lease.hostname,
      compress: config.data.compress,
      clusterId: () => readClusterId(this.store.dataDir),
      routes: {
        "POST /handoff": (req, res) => this.handleHandoff(req, res),
        "POST /promote": (req, res) => this.handlePromote(req, res),
      },
    });
    const address = await this.api.listen();
    this.leaser = createLeaser(config, this.store.dataDir, address.port, log);

    // Started before the mount exists and from a process that holds no mount files.
    this.agent = new ApplyAgent(config.fuse.dir, log);
    this.agent.start();
    this.role = new RoleManager({
      store: this.store,
      leaser: this.leaser,
      api: this.api,
      writer: this.agent,
      log,
      candidate: config.lease.candidate,
      promote: config.lease.promote,
      hostname: config.lease.hostname,
      token: config.http.token,
      databases: config.lease.databases,
      reconnectDelayMs: config.lease.reconnectDelayMs,
      repairAfterDemotion: (jobs) => runDemotionRepair(config.fuse.dir, jobs),
    });
    this.store.setLagProvider(() => this.role?.lagMs() ?? 0);

    const fileSystem = new FileSystem(this.store, this.store.dataDir, log, (err) => this.fatal(err));
    this.mount = new FuseMount(
      config.fuse.dir,
      fileSystem.operations(),
      { allowOther: config.fuse.allowOther, debug: this.opts.fuseDebug ?? config.fuse.debug },
      log,
    );
    await this.mount.mount();
    this.store.startRetention();
    this.role.start();
  }

  /** Resolves when the app may start: once primary, or once caught up as a replica. */
  async ready(): Promise<void> {
    if (!this.role) return;
    if (!this.store.isPrimary) this.opts.log.info("waiting to become primary or to catch up with the primary before starting the app");
    await this.role.waitUntilReady();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.handOverOnShutdown();
    await this.role?.stop();
    await this.api?.close();
    await this.agent?.close();
    await this.leaser?.close().catch((err) => this.opts.log.warn({ err }, "closing the leaser failed"));
    if (this.mount && !this.opts.skipUnmount) await this.mount.unmount();
    this.store.close();
  }

  /** A primary that stops cleanly hands its lease to a connected candidate instead of letting it expire. */
  private async handOverOnShutdown(): Promise<void> {
    const lease = this.role?.currentLease;
    const target = this.api?.candidateReplicas()[0];
    if (!lease || !target || this.opts.config.lease.type === "static") return;
    try {
      await withTimeout(lease.handoff(target), 5000);
      this.opts.log.info({ node: target }, "handed the lease over before shutting down");
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, "handoff on shutdown failed; releasing the lease instead");
      this.store.setPrimary(true);
    }
  }

  private async handleHandoff(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    const target = new URL(req.url ?? "/", "http://localhost").searchParams.get("id");
    if (!target) throw new HttpError(400, "handoff needs ?id=<node ID or hostname of a connected candidate replica>");
    const lease = this.role?.currentLease;
    if (!lease) throw new HttpError(503, "this node is not the primary");
    if (this.opts.config.lease.type === "static") throw new HttpError(400, "a static lease cannot be handed off: change lease.candidate in the config instead");
    try {
      await lease.handoff(target);
    } catch (err) {
      this.store.setPrimary(!lease.signal.aborted);
      // The target is not connected, not a candidate, or went away mid-handoff.
      throw new HttpError(409, (err as Error).message);
    }
    sendJson(res, 200, { handedOffTo: target });
  }

  private async handlePromote(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    if (this.store.isPrimary) return sendJson(res, 200, { primary: true, changed: false });
    try {
      await this.role!.requestPromotion();
    } catch (err) {
      throw new HttpError(400, (err as Error).message);
    }
    const deadline = Date.now() + 10_000;
    while (!this.store.isPrimary && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (!this.store.isPrimary) throw new HttpError(504, "the primary agreed to hand over, but this node did not become primary within 10s");
    sendJson(res, 200, { primary: true, changed: true });
  }

  /**
   * Capture failed after SQLite may already believe a WAL transaction committed: exit 99 at
   * once; startup recovery puts the database back at its last LTX.
   */
  private fatal(err: unknown): never {
    this.opts.log.fatal({ err }, "fatal: cannot record a committed transaction; exiting so recovery can repair it");
    spawnSync("fusermount", ["-u", "-z", this.opts.config.fuse.dir], { timeout: 2000, stdio: "ignore" });
    process.exit(99);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}
