import { spawnSync } from "node:child_process";
import * as path from "node:path";
import type { Logger } from "pino";
import { inactiveSettings, readTlsFiles, type Config, type TlsFiles } from "../config/index.js";
import { Shipper, dataDirIsEmpty, openTarget, restoreIfEmpty, type BackupTarget } from "../backup/index.js";
import { FileSystem } from "../fuse/file-system.js";
import { FuseMount } from "../fuse/mount.js";
import { MountAgent } from "../fuse/mount-agent.js";
import { PeerClient } from "../http/client.js";
import { ApiServer } from "../http/server.js";
import { ReplicaStream } from "../http/stream-replica.js";
import { PeerConnections } from "../http/tls.js";
import type { Leaser } from "../lease/index.js";
import { NodeMetrics } from "../metrics/node-metrics.js";
import { Node } from "../node/node.js";
import { ProxyServer } from "../proxy/server.js";
import { Store } from "../store/store.js";
import { createLeaser, nodeUrls } from "./leaser.js";
import { TestHooks } from "./test-hooks.js";

export interface DaemonOptions {
  config: Config;
  log: Logger;
  /** A replica's first catch-up, in transactions (a progress bar on a terminal). */
  onCatchUp?: (done: number, total: number, finished: boolean) => void;
  skipUnmount?: boolean;
  fuseDebug?: boolean;
}

/**
 * Assembles one node from its pieces and nothing more (see docs/architecture.md): the Store (the
 * databases), the Node (role, lease loop, replicas, events), the cluster API, the FUSE mount and
 * the mount agent, all in this one process.
 *
 * Process model (DESIGN.md section 3): this process never opens files on its own mount.
 * Whatever must go through the mount (applying replicated pages, repairs after a demotion) runs
 * in the mount agent, a child process started before the mount exists and that never spawns; so
 * this process may start the app at any time without an inherited mount file deadlocking the spawn.
 */
export class Daemon {
  readonly store: Store;
  private node: Node | null = null;
  private mount: FuseMount | null = null;
  private api: ApiServer | null = null;
  private agent: MountAgent | null = null;
  private leaser: Leaser | null = null;
  private proxy: ProxyServer | null = null;
  private connections: PeerConnections | null = null;
  private shipper: Shipper | null = null;
  private backupTarget: BackupTarget | null = null;
  private stopped = false;
  private fail!: (err: Error) => void;
  /** Rejects if the node fails after start() returned (the proxy cannot listen); the caller stops the node. */
  readonly failed = new Promise<never>((_, reject) => (this.fail = reject));

  constructor(private readonly opts: DaemonOptions) {
    this.failed.catch(() => undefined); // observed by the supervisor; never an unhandled rejection
    const { config, log } = opts;
    this.store = new Store({
      dataDir: config.data.dir,
      compress: config.data.compress,
      skipSync: config.skipSync,
      // Synchronous replication promises the primary's own LTX is durable before a commit returns.
      durableCommits: config.replication.syncReplicas > 0,
      retentionMs: config.data.retentionMs,
      retentionMonitorIntervalMs: config.data.retentionMonitorIntervalMs,
      // A node that can never be the primary gets a damaged database again from the primary; a candidate may hold the only good copy.
      onDamage: config.lease.candidate ? "refuse" : "resync",
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
    for (const s of inactiveSettings(config)) log.warn({ key: s.key }, `config: ${s.message}`);
    // First: a certificate that cannot be read stops the node before anything has started.
    const tlsFiles = config.http.tls && (await readTlsFiles(config.http.tls));
    const connections = new PeerConnections(tlsFiles);
    this.connections = connections;
    this.backupTarget = config.backup.type ? await openTarget(config.backup) : null;

    // Started before the mount exists and from a process that holds no mount files.
    const agent = new MountAgent(config.fuse.dir, log);
    this.agent = agent;
    agent.start();

    // The API listens before the leaser exists: a Consul node advertises the port it got.
    let node: Node | null = null;
    const metrics = new NodeMetrics(this.store);
    const testHooks = process.env.LITEFS_TEST_HOOKS === "1" ? new TestHooks(this.store, log) : null;
    const api = new ApiServer({
      addr: config.http.addr,
      token: config.http.token,
      tls: tlsFiles,
      get node(): Node {
        return node!;
      },
      store: this.store,
      log,
      compress: config.data.compress,
      testRoutes: testHooks?.routes(),
      metrics,
      info: () => (this.shipper ? { backup: this.shipper.status() } : {}),
      requestTimer: metrics.httpTimer,
      replicationObserver: metrics.replication,
    });
    this.api = api;
    const address = await api.listen();
    const urls = nodeUrls(config, address.port);
    this.leaser = createLeaser(config, this.store.dataDir, urls, log);
    const leaser = this.leaser;
    await this.restoreIfEmpty(leaser);
    this.store.open();
    const peers = new PeerClient(config.http.token, connections);

    node = new Node({
      store: this.store,
      leaser,
      mountWriter: testHooks ? testHooks.mountWriter(agent) : agent,
      peers,
      replicaClient: (session) =>
        new ReplicaStream({
          ...session,
          store: this.store,
          writer: agent,
          log,
          hostname: config.lease.hostname,
          token: config.http.token,
          connections,
          onCatchUp: this.opts.onCatchUp,
          databases: config.lease.databases,
          candidate: config.lease.candidate,
          apiUrl: urls.apiUrl,
          reconnectDelayMs: config.lease.reconnectDelayMs,
          observer: metrics.replication,
        }),
      log,
      hostname: config.lease.hostname,
      candidate: config.lease.candidate,
      promote: config.lease.promote,
      reconnectDelayMs: config.lease.reconnectDelayMs,
      proxyUrl: urls.proxyUrl,
      replication: config.replication,
    });
    this.node = node;
    this.startBackups(node, metrics);

    const fileSystem = new FileSystem({
      store: this.store,
      node,
      isMountAgent: (pid) => agent.owns(pid),
      callerPid: () => this.mount?.callerPid() ?? 0,
      log,
      onFatal: (err) => this.fatal(err),
      observer: metrics.fuse,
    });
    metrics.watch(node, () => fileSystem.requestStartedAt());
    this.mount = new FuseMount(
      config.fuse.dir,
      fileSystem.operations(),
      {
        allowOther: config.fuse.allowOther,
        debug: this.opts.fuseDebug ?? config.fuse.debug,
        busyPollMs: config.fuse.busyPollMs,
        strayDir: path.join(this.store.dataDir, "stray"),
      },
      log,
    );
    await this.mount.mount();
    this.store.startRetention();
    node.start();
    this.startProxy(node, peers, tlsFiles);
  }

  /**
   * SIGHUP: re-reads http.tls's files. New connections, served and opened, use them; open ones
   * keep theirs. Files that cannot be used are logged and the ones in use kept.
   */
  async reloadTls(): Promise<void> {
    const { config, log } = this.opts;
    if (!config.http.tls || !this.api || this.stopped) return;
    let files: TlsFiles;
    try {
      files = await readTlsFiles(config.http.tls);
      this.api.setTlsFiles(files);
    } catch (err) {
      log.error({ err: (err as Error).message }, "TLS reload failed: keeping the certificate in use");
      return;
    }
    this.connections?.reload(files);
    log.info({ cert: config.http.tls.cert, ...(config.http.tls.ca && { ca: config.http.tls.ca }) }, "TLS certificate reloaded");
  }

  /**
   * backup.restore-if-empty: a node that will be the primary and holds no database restores every
   * database from the backup before the Store opens, so nothing is served before it. A static
   * candidate is the primary; a Consul candidate restores only while no other node holds the
   * lease (if it loses the race it becomes a replica, and the primary's snapshot replaces what it
   * restored). Replicas and nodes with data never restore.
   */
  private async restoreIfEmpty(leaser: Leaser): Promise<void> {
    const { config, log } = this.opts;
    const target = this.backupTarget;
    if (!target || !config.backup.restoreIfEmpty) return;
    if (!config.lease.candidate) return void log.info("restore-if-empty: skipped, this node is not a lease candidate (a replica gets its data from the primary)");
    if (!dataDirIsEmpty(this.store.dataDir)) return void log.info("restore-if-empty: skipped, data.dir already holds databases");
    if (config.lease.type === "consul") {
      const primary = await leaser.primaryInfo();
      if (primary && primary.hostname !== config.lease.hostname) {
        return void log.info({ primary: primary.hostname }, "restore-if-empty: skipped, another node is the primary (this node will replicate from it)");
      }
    }
    log.info({ target: target.url }, "restore-if-empty: data.dir is empty, restoring every database from the backup");
    const names = await restoreIfEmpty(this.store.dataDir, target, log);
    log.info({ databases: names }, "restore-if-empty: done");
  }

  /** The shipper uploads while this node is primary (src/backup/): it follows the node's role. */
  private startBackups(node: Node, metrics: NodeMetrics): void {
    const { config, log } = this.opts;
    if (!this.backupTarget) return;
    const shipper = new Shipper({ store: this.store, target: this.backupTarget, config: config.backup, log });
    this.shipper = shipper;
    metrics.watchBackup(() => shipper.status());
    node.events.subscribe((ev) => {
      if (ev.type !== "role") return;
      if (ev.role === "primary") shipper.start();
      else void shipper.stop();
    });
  }

  /** LiteFS's proxy listens once the node is ready: primary, or caught up as a replica. */
  private startProxy(node: Node, peers: PeerClient, tlsFiles: TlsFiles | undefined): void {
    const { config, log } = this.opts;
    const { addr, target } = config.proxy;
    if (target === undefined || addr === undefined) return;
    const proxy = new ProxyServer({
      config: { ...config.proxy, addr, target },
      node,
      store: this.store,
      primaryTxids: (primary) => peers.primaryTxids(primary),
      trustedCa: tlsFiles?.ca,
      log,
      flyAppName: process.env.FLY_APP_NAME || undefined,
    });
    this.proxy = proxy;
    if (config.proxy.flyReplay && !process.env.FLY_APP_NAME) log.warn("proxy.fly-replay is set but FLY_APP_NAME is not (not on Fly.io): writes are forwarded instead");
    void node
      .waitUntilReady()
      .then(() => (this.stopped ? undefined : proxy.listen()))
      .catch((err: Error) => this.fail(err));
  }

  /** Resolves when the app may start: once primary, or once caught up as a replica. */
  async ready(): Promise<void> {
    if (!this.node) return;
    if (!this.node.isPrimary) this.opts.log.info("waiting to become primary or to catch up with the primary before starting the app");
    await this.node.waitUntilReady();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.proxy?.close();
    await this.node?.stop();
    await this.shipper?.close();
    this.backupTarget?.close();
    await this.api?.close();
    await this.connections?.close();
    await this.agent?.close();
    await this.leaser?.close().catch((err) => this.opts.log.warn({ err }, "closing the leaser failed"));
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
