import { spawnSync } from "node:child_process";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import { FileSystem } from "../fuse/file-system.js";
import { FuseMount } from "../fuse/mount.js";
import { Store } from "../store/store.js";

export interface DaemonOptions {
  config: Config;
  log: Logger;
  skipUnmount?: boolean;
  fuseDebug?: boolean;
}

/**
 * A running node: the Store, its FUSE mount and (later stages) the lease and the cluster API,
 * all in this one process. Process model (DESIGN.md section 3): this process never opens files
 * on its own mount; whatever must go through the mount (applying replicated pages under SQLite's
 * locks) runs in a helper process that never spawns, so this process may start the app.
 */
export class Daemon {
  readonly store: Store;
  private mount: FuseMount | null = null;
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

  /** Recovers the databases, takes the lease role and mounts. */
  async start(): Promise<void> {
    const { config, log } = this.opts;
    this.store.open();
    if (config.lease.type === "static") {
      this.store.setPrimary(config.lease.candidate);
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
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
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
