import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import { PAGE_READ_AHEAD_BYTES } from "./backing-file.js";
import { Database } from "./database.js";
import { StoreError } from "./errors.js";
import type { CommitEvent, CommitWait, StoreEvent } from "./events.js";
import { recoverDatabase, type DamagePolicy } from "./recover.js";
import { saveChecksums } from "./saved-checksums.js";
import { enforceRetention, type RetentionFloor } from "./retention.js";
import { writeDatabaseImage, writeSnapshot, type DatabaseImage, type SnapshotFile, type SnapshotOptions } from "./snapshot.js";
import { SpareFiles } from "./spare-files.js";

export interface StoreOptions {
  dataDir: string;
  compress: boolean;
  skipSync: boolean;
  /** Fsync every commit's LTX before the commit returns (synchronous replication); see Database. */
  durableCommits?: boolean;
  /** How soon a commit's LTX written without an fsync is made durable if SQLite sends none (ms). */
  ltxSyncIntervalMs?: number;
  retentionMs: number;
  retentionMonitorIntervalMs: number;
  /** A database file that disagrees with its position and that replay cannot repair (see recoverDatabase); default "refuse". */
  onDamage?: DamagePolicy;
  logger: Logger;
}

const NODE_ID_FILE = "id";
const DEFAULT_LTX_SYNC_INTERVAL_MS = 1000;
const DBS_DIR = "dbs";
/** Files in transit (an import being received, an export being sent); emptied at every start. */
const TMP_DIR = "tmp";

/** Holds local commits until it resolves (see CommitWait); installed by the node (sync replication, test gate). */
export type CommitBarrier = (ev: CommitEvent) => CommitWait;

/**
 * All databases of this node (data.dir/dbs/<name>/) and the changes made to them, told in order
 * to subscribers. The core of the system: knows nothing of FUSE, HTTP or leases; which node may
 * write is the Node's business (src/node/).
 */
export class Store {
  readonly dataDir: string;
  readonly nodeId: bigint;
  readonly log: Logger;
  private readonly dbs = new Map<string, Database>();
  /** Empty files made ahead of time in data.dir/tmp/spare, for every database's new files. */
  private readonly spares: SpareFiles;
  private readonly listeners = new Set<(ev: StoreEvent) => void>();
  private readonly commitBarriers = new Set<CommitBarrier>();
  private retentionTimer: NodeJS.Timeout | null = null;
  private ltxSyncTimer: NodeJS.Timeout | null = null;
  private ltxSyncRunning = false;
  private retentionFloor: RetentionFloor = () => null;
  private tmpSeq = 0;
  /** Databases whose file startup recovery found damaged (checksum mismatch), by name: for the metrics. */
  readonly damagedAtStartup = new Map<string, number>();
  /** Awaited by every snapshot once its first pages are read (the test suite's gate); none by default. */
  private snapshotPause: SnapshotOptions["pause"];

  constructor(private readonly opts: StoreOptions) {
    this.dataDir = path.resolve(opts.dataDir);
    this.log = opts.logger;
    fs.mkdirSync(path.join(this.dataDir, DBS_DIR), { recursive: true });
    this.nodeId = readOrCreateNodeId(this.dataDir);
    this.spares = new SpareFiles(path.join(this.dataDir, TMP_DIR, "spare"));
  }

  /** Whether LTX files are LZ4-compressed (data.compress). */
  get compress(): boolean {
    return this.opts.compress;
  }

  /** A new path under data.dir/tmp/ for a file in transit (the caller removes it). */
  tempPath(label: string): string {
    const dir = path.join(this.dataDir, TMP_DIR);
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, `${label}-${process.pid}-${++this.tmpSeq}`);
  }

  /** Recovers every database found under data.dir (before the mount serves anything). */
  open(): void {
    const started = performance.now();
    fs.rmSync(path.join(this.dataDir, TMP_DIR), { recursive: true, force: true });
    fs.mkdirSync(path.join(this.dataDir, TMP_DIR)); // where spare files are made (spare-files.ts)
    const root = path.join(this.dataDir, DBS_DIR);
    // One read-ahead buffer for every database's whole-file passes: they run one after the other.
    const readAhead = Buffer.allocUnsafe(PAGE_READ_AHEAD_BYTES);
    for (const name of fs.readdirSync(root).sort()) {
      if (!fs.statSync(path.join(root, name)).isDirectory()) continue;
      const db = this.newDatabase(name);
      if (recoverDatabase(db, this.opts.onDamage, readAhead).damaged) this.damagedAtStartup.set(name, (this.damagedAtStartup.get(name) ?? 0) + 1);
      this.dbs.set(name, db);
    }
    this.log.info({ databases: this.dbs.size, ms: Math.round(performance.now() - started) }, "store opened");
    this.startLtxSync();
  }

  // ---- durability of LTX files written without an fsync ----------------------------------------

  /**
   * A WAL commit under synchronous=NORMAL writes its LTX without an fsync (SQLite does not fsync
   * either); SQLite's next fsync makes it durable (Database.sync), and this timer does within
   * ltxSyncIntervalMs if none comes. It runs on the thread pool: never a stall of FUSE requests.
   */
  private startLtxSync(): void {
    if (this.ltxSyncTimer || this.opts.skipSync) return;
    this.ltxSyncTimer = setInterval(() => void this.syncPendingLtx(), this.opts.ltxSyncIntervalMs ?? DEFAULT_LTX_SYNC_INTERVAL_MS);
    this.ltxSyncTimer.unref();
  }

  /** Makes every database's pending LTX files durable (asynchronously); one pass at a time. */
  async syncPendingLtx(): Promise<void> {
    if (this.ltxSyncRunning) return;
    this.ltxSyncRunning = true;
    try {
      for (const db of this.dbs.values()) {
        if (!db.ltx.hasPending) continue;
        try {
          await db.ltx.syncPendingAsync();
        } catch (err) {
          this.log.error({ err, db: db.name, txid: db.position.txid }, "cannot fsync LTX files");
        }
      }
    } finally {
      this.ltxSyncRunning = false;
    }
  }

  /** A directory fsync on the mount: every database's LTX files written so far become durable. */
  syncAllLtx(): void {
    if (this.opts.skipSync) return;
    for (const db of this.dbs.values()) db.ltx.syncPending();
  }

  /** Databases that exist (not dropped), by name. */
  databaseNames(): string[] {
    return [...this.dbs.values()].filter((db) => db.exists).map((db) => db.name);
  }

  database(name: string): Database | undefined {
    const db = this.dbs.get(name);
    return db?.exists ? db : undefined;
  }

  /** Databases that hold committed transactions or were dropped (they keep their position). */
  knownDatabases(): Database[] {
    return [...this.dbs.values()].filter((db) => db.position.txid > 0);
  }

  /** Every database this node knows of, including dropped ones (they keep their position). */
  allDatabases(): Database[] {
    return [...this.dbs.values()];
  }

  /** The database of that name, dropped or not; created empty (not on the mount) if unknown. */
  databaseForReplication(name: string): Database {
    validateDatabaseName(name);
    let db = this.dbs.get(name);
    if (!db) {
      db = this.newDatabase(name);
      db.setPosition(db.position, true);
      this.dbs.set(name, db);
    }
    return db;
  }

  createDatabase(name: string): Database {
    validateDatabaseName(name);
    let db = this.dbs.get(name);
    if (!db) {
      db = this.newDatabase(name);
      this.dbs.set(name, db);
    }
    db.markCreated();
    this.log.info({ db: name }, "database created");
    this.notify({ type: "created", db });
    return db;
  }

  /** Every change, in order; returns an unsubscribe. */
  subscribe(fn: (ev: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Commits only (local ones and applied files, drops included). */
  onCommit(fn: (ev: CommitEvent) => void): () => void {
    return this.subscribe((ev) => {
      if (ev.type === "commit") fn(ev);
    });
  }

  /** Local commits wait for `barrier` (and every other one) before SQLite hears they completed; returns its removal. */
  addCommitBarrier(barrier: CommitBarrier): () => void {
    this.commitBarriers.add(barrier);
    return () => this.commitBarriers.delete(barrier);
  }

  private notify(ev: StoreEvent): CommitWait {
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (err) {
        this.log.error({ err, event: ev.type }, "store listener failed");
      }
    }
    if (ev.type !== "commit" || ev.source !== "local") return null;
    let waits: Promise<void>[] | null = null;
    for (const barrier of this.commitBarriers) {
      const wait = barrier(ev);
      if (wait) (waits ??= []).push(wait);
    }
    if (!waits) return null;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  /** A database created on the mount whose first write was refused leaves nothing behind. */
  private discard(db: Database): void {
    db.removeFiles();
    if (db.position.txid === 0) {
      this.dbs.delete(db.name);
      fs.rmSync(db.dir, { recursive: true, force: true });
    }
    this.log.warn({ db: db.name }, "database created on the mount was refused its first write: removed");
  }

  // ---- snapshots ----------------------------------------------------------------------------

  /**
   * Writes a snapshot LTX of `db` at its current position to a new temporary file (the caller
   * removes it), in a worker thread: FUSE requests and commits go on meanwhile (snapshot.ts).
   */
  writeSnapshot(db: Database, label: string, compress = this.compress, signal?: AbortSignal): Promise<SnapshotFile> {
    const spillPath = this.tempPath(`${label}-spill`);
    return writeSnapshot(db, this.tempPath(label), { compress, spillPath, pause: this.snapshotPause, signal });
  }

  /** An export: the database as a plain SQLite file at `path` (in tmp/), written as a snapshot is, off the event loop. */
  writeDatabaseImage(db: Database, path: string): Promise<DatabaseImage> {
    return writeDatabaseImage(db, path, { spillPath: this.tempPath("export-spill"), pause: this.snapshotPause });
  }

  /** Snapshots (and exports) wait for `pause` once they have read their first pages (test hooks only). */
  setSnapshotPause(pause: SnapshotOptions["pause"]): void {
    this.snapshotPause = pause;
  }

  // ---- retention ----------------------------------------------------------------------------

  startRetention(): void {
    if (this.retentionTimer) return;
    this.retentionTimer = setInterval(() => void this.runRetention(), this.opts.retentionMonitorIntervalMs);
    this.retentionTimer.unref();
  }

  /** Retention keeps every LTX file above the TXID `floor` names (see RetentionFloor). */
  setRetentionFloor(floor: RetentionFloor): void {
    this.retentionFloor = floor;
  }

  /**
   * Removes LTX files older than data.retention; the newest file of a database is always kept,
   * and so is every file above the retention floor.
   * A database that fails is logged and skipped: the others still get their pass.
   */
  async runRetention(now = Date.now()): Promise<number> {
    let removed = 0;
    for (const db of this.dbs.values()) {
      try {
        removed += await enforceRetention(db, this.opts.retentionMs, now, this.retentionFloor(db));
      } catch (err) {
        this.log.error({ err, db: db.name, txid: db.position.txid }, "retention failed");
      }
    }
    return removed;
  }

  close(): void {
    void this.spares.close(); // a fill still running stops by itself
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = null;
    if (this.ltxSyncTimer) clearInterval(this.ltxSyncTimer);
    this.ltxSyncTimer = null;
    try {
      this.syncAllLtx();
    } catch (err) {
      this.log.error({ err }, "cannot fsync LTX files at close");
    }
    for (const db of this.dbs.values()) {
      try {
        saveChecksums(db);
      } catch (err) {
        db.log.warn({ err }, "cannot save page checksums at close; the next start computes them");
      }
      db.closeFiles();
    }
  }

  private newDatabase(name: string): Database {
    const db = new Database({
      name,
      dir: path.join(this.dataDir, DBS_DIR, name),
      compress: this.opts.compress,
      skipSync: this.opts.skipSync,
      durableCommits: this.opts.durableCommits ?? false,
      nodeId: this.nodeId,
      spares: this.spares,
      logger: this.log,
      notify: (ev) => this.notify(ev),
      discard: (d) => this.discard(d),
    });
    fs.mkdirSync(db.dir, { recursive: true });
    db.ltx.ensure();
    return db;
  }
}

/** A database name is one file name in the mount's root, not one of the names the mount owns. */
function validateDatabaseName(name: string): void {
  const problem =
    name.length === 0
      ? "empty name"
      : name.length > 200
        ? "longer than 200 bytes"
        : name.includes("/") || name.includes("\0")
          ? "contains '/' or NUL"
          : name.startsWith(".")
            ? "names starting with '.' are reserved for the mount's own files"
            : /-(journal|wal|shm|pos)$/.test(name)
              ? "ends in a suffix the mount reserves (-journal, -wal, -shm, -pos)"
              : null;
  if (problem) throw new StoreError("STORE_BAD_NAME", `invalid database name ${JSON.stringify(name)}: ${problem}`);
}

function readOrCreateNodeId(dataDir: string): bigint {
  const file = path.join(dataDir, NODE_ID_FILE);
  try {
    const text = fs.readFileSync(file, "utf8").trim();
    if (/^[0-9a-f]{16}$/.test(text)) return BigInt(`0x${text}`);
    throw new StoreError("STORE_BAD_NODE_ID", `${file}: expected 16 hex digits, found ${JSON.stringify(text.slice(0, 40))}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const id = randomBytes(8);
  id[0] &= 0x7f; // keep it positive as a signed 64-bit value for tools that print it signed
  const hex = id.toString("hex");
  fs.writeFileSync(file, `${hex}\n`);
  return BigInt(`0x${hex}`);
}
