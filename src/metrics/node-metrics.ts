import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Node } from "../node/node.js";
import type { NodeEvent } from "../node/events.js";
import type { Database, FileKind } from "../store/database.js";
import type { Store } from "../store/store.js";
import { LabelledHistogram } from "./histogram.js";

/** FUSE requests take 70-200 µs here (DESIGN.md section 12); a commit adds an fsync or two. */
const FUSE_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5];
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60];

/** What the events of one database have added up to (exported at scrape time). */
interface DbSeries {
  commits: number;
  lagSeconds: number;
  observeCommit: (seconds: number) => void;
}

/**
 * The node's Prometheus metrics (GET /metrics, docs/metrics.md): LiteFS's names, read from the
 * Node and the Store at scrape time or added up from the Node's event stream, plus latency
 * histograms fed through the adapters' observer seams (FUSE, HTTP, replication). The core never
 * sees prom-client; this module only reads it.
 *
 * The event path and the observers add to plain numbers and arrays; everything prom-client
 * does (label hashing, formatting) happens at scrape time.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  private readonly dbs = new Map<string, DbSeries>();
  private readonly commitLatency: LabelledHistogram;
  private readonly fuseLatency: LabelledHistogram;
  private readonly httpLatency: LabelledHistogram;
  private readonly ltxSizes = new Map<string, Map<string, number>>();
  private ltxReading: Promise<Map<string, LtxUsage>> | null = null;
  private node: Node | null = null;
  private requestStartedAt: () => number = () => NaN;
  private unsubscribe: () => void = () => undefined;
  private backup: () => Record<string, BackupPosition> = () => ({});

  /** The FUSE adapter's observer (FileSystemOptions.observer). */
  readonly fuse: { timer(op: string): (seconds: number) => void };
  /** The cluster API's request timer (ApiServerOptions.requestTimer). */
  readonly httpTimer: (route: string) => (seconds: number) => void;
  /** The replication stream's observer, both ends (ReplicationObserver). */
  readonly replication: {
    snapshotSent(db: string): void;
    snapshotReceived(db: string): void;
    reconnecting(): void;
    checksumMismatch(db: string): void;
  };

  /** Everything exists (and is exported) from here on; what needs the Node reads zero until `watch`. */
  constructor(private readonly store: Store) {
    const metrics = this;
    const node = (): Node | null => metrics.node;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    // ---- LiteFS's names (litefs db.go, store.go) ----
    new Gauge({ name: "litefs_db_count", help: "Number of managed databases.", registers, collect() {
      this.set(metrics.store.databaseNames().length);
    } });
    new Gauge({ name: "litefs_is_primary", help: "Primary status of the node.", registers, collect() {
      this.set(node()?.isPrimary ? 1 : 0);
    } });
    new Gauge({ name: "litefs_subscriber_count", help: "Number of connected subscribers (replicas streaming from this primary).", registers, collect() {
      this.set(node()?.replicas.list().length ?? 0);
    } });
    new Gauge({ name: "litefs_lag_seconds", help: "Lag behind the primary node, in seconds (0 on the primary).", registers, collect() {
      this.set((node()?.lagMs() ?? 0) / 1000);
    } });
    this.perDb("gauge", "litefs_db_txid", "Current transaction ID.", (db) => db.position.txid);
    for (const kind of ["database", "journal", "wal", "shm"] as const satisfies readonly FileKind[]) {
      this.perDb("counter", `litefs_db_${kind}_write_count`, `Number of writes to the ${kind === "shm" ? "shared memory" : kind} file.`, (db) => db.stats.writes[kind]);
    }
    this.perDb("counter", "litefs_db_commit_count", "Number of database commits (local transactions and drops, not applied files).", (db) => this.dbs.get(db.name)?.commits);
    this.perDb("gauge", "litefs_db_ltx_reap_count", "Number of LTX files removed by retention.", (db) => db.stats.ltxReaped);
    this.perDb("gauge", "litefs_db_lag_seconds", "Time from the creation of the last LTX file to its apply on this node (0 after a local commit).", (db) => this.dbs.get(db.name)?.lagSeconds);
    // Read from disk on the thread pool at scrape time, never on the thread that serves FUSE.
    const fromLtxUsage = (pick: (u: LtxUsage) => number) =>
      async function (this: Gauge) {
        this.reset();
        for (const [db, usage] of await metrics.ltxUsage()) this.set({ db }, pick(usage));
      };
    new Gauge({ name: "litefs_db_ltx_count", help: "Number of LTX files on disk.", labelNames: ["db"], registers, collect: fromLtxUsage((u) => u.count) });
    new Gauge({ name: "litefs_db_ltx_bytes", help: "Number of bytes used by LTX files on disk.", labelNames: ["db"], registers, collect: fromLtxUsage((u) => u.bytes) });

    // ---- beyond LiteFS ----
    this.commitLatency = new LabelledHistogram(
      "litefs_db_commit_latency_seconds",
      "Time from the start of the FUSE request that completed a local commit to its LTX file being durable.",
      "db",
      COMMIT_BUCKETS,
      this.registry,
    );
    this.fuseLatency = new LabelledHistogram("litefs_fuse_request_duration_seconds", "FUSE requests by operation, from the start of their handler to their answer.", "op", FUSE_BUCKETS, this.registry);
    this.httpLatency = new LabelledHistogram("litefs_http_request_duration_seconds", "Cluster API requests by route, until their answer ended (streams: until they closed).", "route", HTTP_BUCKETS, this.registry);
    // Synchronous replication (replication.sync-replicas); absent state reads as 0.
    const sync = () => node()?.syncStatus();
    new Gauge({ name: "litefs_sync_replicas", help: "Synchronous replication: replicas in the in-sync set (every commit waits for each).", registers, collect() {
      this.set(sync()?.members.length ?? 0);
    } });
    new Gauge({ name: "litefs_sync_degraded", help: "Synchronous replication: 1 while the primary goes on with fewer in-sync replicas than sync-replicas.", registers, collect() {
      this.set(sync()?.degraded ? 1 : 0);
    } });
    new Gauge({ name: "litefs_sync_waiting_commits", help: "Synchronous replication: commits waiting for acknowledgements now.", registers, collect() {
      this.set(sync()?.waiting ?? 0);
    } });
    new Gauge({ name: "litefs_sync_degradations", help: "Synchronous replication: times the primary went on without an in-sync replica since it became primary.", registers, collect() {
      this.set(sync()?.degradations ?? 0);
    } });
    new Gauge({ name: "litefs_replica_lag_seconds", help: "On the primary, per connected replica: how long the oldest commit not yet sent to it has waited (0: sent everything).", labelNames: ["replica"], registers, collect() {
      this.reset();
      const now = Date.now();
      for (const r of node()?.replicas.list() ?? []) this.set({ replica: r.identity.hostname }, r.lagMs(now) / 1000);
    } });
    const snapshotsSent = new Counter({ name: "litefs_snapshots_sent_total", help: "Snapshots this node sent to replicas, by database.", labelNames: ["db"], registers });
    const snapshotsReceived = new Counter({ name: "litefs_snapshots_received_total", help: "Snapshots this node received from the primary and applied, by database.", labelNames: ["db"], registers });
    const reconnects = new Counter({ name: "litefs_stream_reconnects_total", help: "Times this replica's stream from the primary ended or failed and it connected again.", registers });
    // Startup recovery runs before anything observes: its findings are added at scrape time.
    const countedAtStartup = new Map<string, number>();
    const mismatches = new Counter({ name: "litefs_checksum_mismatches_total", help: "Checksum mismatches in received files, after applies, in snapshots being built, and of database files at startup, by database.", labelNames: ["db"], registers, collect() {
      for (const [db, n] of metrics.store.damagedAtStartup) {
        const more = n - (countedAtStartup.get(db) ?? 0);
        if (more > 0) this.inc({ db }, more);
        countedAtStartup.set(db, n);
      }
    } });

    const backupGauge = (name: string, help: string, pick: (b: BackupPosition) => number) =>
      new Gauge({ name, help, labelNames: ["db"], registers, collect() {
        this.reset();
        for (const [db, b] of Object.entries(metrics.backup())) this.set({ db }, pick(b));
      } });
    backupGauge("litefs_backup_txid", "On the primary: the newest TXID stored in the backup, by database.", (b) => b.txid);
    backupGauge("litefs_backup_lag_seconds", "On the primary: how long the oldest commit not yet in the backup has waited (0: all shipped).", (b) => b.lagMs / 1000);
    backupGauge("litefs_backup_failing", "On the primary: 1 while the last backup attempt for the database failed.", (b) => (b.error ? 1 : 0));

    this.fuse = { timer: (op) => this.fuseLatency.child(op) };
    this.httpTimer = (route) => this.httpLatency.child(route);
    this.replication = {
      snapshotSent: (db) => snapshotsSent.inc({ db }),
      snapshotReceived: (db) => snapshotsReceived.inc({ db }),
      reconnecting: () => reconnects.inc(),
      checksumMismatch: (db) => mismatches.inc({ db }),
    };
  }

  /**
   * Starts following `node`'s event stream. `requestStartedAt`: when the handler of the FUSE
   * request being handled started (performance.now()), NaN outside one (FileSystem
   * .requestStartedAt); a local commit is timed from the request that completed it.
   */
  watch(node: Node, requestStartedAt: () => number): void {
    this.unsubscribe();
    this.node = node;
    this.requestStartedAt = requestStartedAt;
    this.unsubscribe = node.events.subscribe((ev) => this.onEvent(ev));
  }

  /** Backup positions per database, read at scrape time (src/backup/'s Shipper.status). */
  watchBackup(source: () => Record<string, BackupPosition>): void {
    this.backup = source;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  async scrape(): Promise<string> {
    return exactNaN(await this.registry.metrics());
  }

  private onEvent(ev: NodeEvent): void {
    if (ev.type !== "commit") return;
    const series = this.seriesOf(ev.db);
    if (ev.source === "applied") {
      series.lagSeconds = Math.max(0, Date.now() - ev.timestamp) / 1000;
      return;
    }
    series.commits++;
    series.lagSeconds = 0;
    // Handlers run without yielding, so the request being handled is the one that committed.
    const started = this.requestStartedAt();
    if (!Number.isNaN(started)) series.observeCommit((performance.now() - started) / 1000);
  }

  private seriesOf(db: string): DbSeries {
    let s = this.dbs.get(db);
    if (!s) {
      s = { commits: 0, lagSeconds: 0, observeCommit: this.commitLatency.child(db) };
      this.dbs.set(db, s);
    }
    return s;
  }

  /** A gauge or counter with a `db` label, set at scrape time for every database that holds transactions. */
  private perDb(type: "gauge" | "counter", name: string, help: string, value: (db: Database) => number | undefined): void {
    const store = this.store;
    const config = { name, help, labelNames: ["db"], registers: [this.registry] };
    if (type === "gauge") {
      new Gauge({ ...config, collect() {
        this.reset();
        for (const db of store.knownDatabases()) {
          const v = value(db);
          if (v !== undefined) this.set({ db: db.name }, v);
        }
      } });
    } else {
      new Counter({ ...config, collect() {
        this.reset();
        for (const db of store.knownDatabases()) {
          const v = value(db);
          if (v !== undefined) this.inc({ db: db.name }, v);
        }
      } });
    }
  }

  /**
   * LTX files per database, read once per scrape (both LTX gauges ask; the registry asks every
   * metric at once, so the second finds the first's reading in flight).
   */
  private ltxUsage(): Promise<Map<string, LtxUsage>> {
    this.ltxReading ??= this.readLtxUsage().finally(() => (this.ltxReading = null));
    return this.ltxReading;
  }

  private async readLtxUsage(): Promise<Map<string, LtxUsage>> {
    const out = new Map<string, LtxUsage>();
    for (const db of this.store.knownDatabases()) {
      const usage = await readLtxFolder(db, this.ltxSizes).catch(() => null); // a folder that vanished meanwhile
      if (usage) out.set(db.name, usage);
    }
    return out;
  }
}

/** What the backup shipper reports per database (the fields read here). */
interface BackupPosition {
  txid: number;
  lagMs: number;
  error: string | null;
}

interface LtxUsage {
  count: number;
  bytes: number;
}

/**
 * The number and total size of a database's LTX files. Sizes are cached by file name (an LTX
 * file never changes once it has its name), so a scrape stats only the files new since the last.
 */
async function readLtxFolder(db: Database, cache: Map<string, Map<string, number>>): Promise<LtxUsage> {
  let names: string[];
  try {
    names = (await fsp.readdir(db.ltx.dir)).filter((n) => n.endsWith(".ltx"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    names = [];
  }
  const known = cache.get(db.name) ?? new Map<string, number>();
  const sizes = new Map<string, number>();
  for (const name of names) {
    const size = known.get(name) ?? (await fsp.stat(path.join(db.ltx.dir, name)).then((st) => st.size, () => undefined));
    if (size !== undefined) sizes.set(name, size);
  }
  cache.set(db.name, sizes);
  let bytes = 0;
  for (const size of sizes.values()) bytes += size;
  return { count: sizes.size, bytes };
}

/**
 * prom-client writes NaN as "Nan" (nodejs_eventloop_lag_*_seconds when no event-loop delay was
 * sampled since the last scrape, e.g. two scrapes within 10 ms). Prometheus's own parser takes
 * any case, but the text format and OpenMetrics say "NaN", and stricter parsers refuse the rest.
 */
export function exactNaN(text: string): string {
  return text.replace(/ Nan$/gm, " NaN");
}
