import { spawnSync } from "node:child_process";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { ApplyAgent } from "../fuse/apply-agent.js";
import { FileSystem } from "../fuse/file-system.js";
import { FuseMount } from "../fuse/mount.js";
import { ApiServer } from "../http/server.js";
import { ReplicaStream } from "../http/stream-replica.js";
import { generateClusterId, readClusterId, writeClusterId } from "../store/cluster-id.js";
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
  private replica: ReplicaStream | null = null;
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

  /** Recovers the databases, starts the API, takes the lease role and mounts. */
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
    });
    await this.api.listen();

    const primary = config.lease.type === "static" && config.lease.candidate;
    if (primary) {
      if (!readClusterId(this.store.dataDir)) writeClusterId(this.store.dataDir, generateClusterId());
      this.store.setPrimary(true);
    } else {
      this.store.setPrimary(false);
      this.agent = new ApplyAgent(config.fuse.dir, log);
      this.agent.start();
      const advertiseUrl = config.lease.advertiseUrl;
      this.replica = new ReplicaStream({
        store: this.store,
        writer: this.agent,
        log,
        hostname: config.lease.hostname,
        token: config.http.token,
        databases: config.lease.databases,
        reconnectDelayMs: config.lease.reconnectDelayMs,
        discoverPrimary: async () => (advertiseUrl ? { hostname: "", advertiseUrl } : null),
      });
      this.store.setLagProvider(() => this.replica?.lagMs() ?? 0);
    }

    const fileSystem = new FileSystem(this.store, this.store.dataDir, log, (err) => this.fatal(err));
    this.mount = new FuseMount(
      config.fuse.dir,
      fileSystem.operations(),
      { allowOther: config.fuse.allowOther, debug: this.opts.fuseDebug ?? config.fuse.debug },
      log,
    );
    await this.mount.mount();
    this.store.startRetention();
    this.replica?.start();
  }

  /** Resolves when the app may start: at once on the primary, once caught up on a replica. */
  async ready(): Promise<void> {
    if (this.replica) {
      this.opts.log.info("waiting to catch up with the primary before starting the app");
      await this.replica.waitUntilReady();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.replica?.stop();
    await this.api?.close();
    await this.agent?.close();
    if (this.mount && !this.opts.skipUnmount) await this.mount.unmount();
    this.store.close();
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
