import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import { Database, type CommitEvent } from "./database.js";
import { StoreError } from "./errors.js";
import { recoverDatabase } from "./recover.js";
import { enforceRetention } from "./retention.js";

export interface StoreOptions {
  dataDir: string;
  compress: boolean;
  skipSync: boolean;
  retentionMs: number;
  retentionMonitorIntervalMs: number;
  logger: Logger;
}

const NODE_ID_FILE = "id";
const DBS_DIR = "dbs";

/**
 * All databases of this node (data.dir/dbs/<name>/), whether this node is the primary, and what
 * the adapters need to present them. The core of the system: knows nothing of FUSE or HTTP.
 */
export class Store {
  readonly dataDir: string;
  readonly nodeId: bigint;
  readonly log: Logger;
  private primary = false;
  private readonly dbs = new Map<string, Database>();
  private readonly listeners = new Set<(ev: CommitEvent) => void>();
  private retentionTimer: NodeJS.Timeout | null = null;
  private primaryHost: string | null = null;
  private lagProvider: () => number = () => 0;
  private status = Date.now();

  constructor(private readonly opts: StoreOptions) {
    this.dataDir = path.resolve(opts.dataDir);
    this.log = opts.logger;
    fs.mkdirSync(path.join(this.dataDir, DBS_DIR), { recursive: true });
    this.nodeId = readOrCreateNodeId(this.dataDir);
  }

  /** Recovers every database found under data.dir (before the mount serves anything). */
  open(): void {
    const root = path.join(this.dataDir, DBS_DIR);
    for (const name of fs.readdirSync(root).sort()) {
      if (!fs.statSync(path.join(root, name)).isDirectory()) continue;
      const db = this.newDatabase(name);
      recoverDatabase(db);
      this.dbs.set(name, db);
    }
    this.log.info({ databases: this.dbs.size }, "store opened");
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  setPrimary(primary: boolean): void {
    if (primary !== this.primary) this.log.info({ primary }, primary ? "this node is now the primary" : "this node is now a replica");
    if (primary !== this.primary) this.primaryHost = null; // learnt again from the next stream
    this.primary = primary;
    this.bumpStatus();
  }

  /** Databases that exist (not dropped), by name. */
  databaseNames(): string[] {
    return [...this.dbs.values()].filter((db) => db.exists).map((db) => db.name);
  }

  database(name: string): Database | undefined {
    const db = this.dbs.get(name);
    return db?.exists ? db : undefined;
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
    return db;
  }

  onCommit(fn: (ev: CommitEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // ---- replica status shown in .primary / .lag ----------------------------------------------

  primaryHostname(): string | null {
    return this.primary ? null : this.primaryHost;
  }

  setPrimaryHostname(host: string | null): void {
    if (host !== this.primaryHost) this.bumpStatus();
    this.primaryHost = host;
  }

  lagMs(): number {
    return this.primary ? 0 : this.lagProvider();
  }

  setLagProvider(fn: () => number): void {
    this.lagProvider = fn;
  }

  /** Moves whenever `.primary` may have changed; `.lag` changes continuously, so it moves per second too. */
  statusVersion(): number {
    return Math.max(this.status, Math.floor(Date.now() / 1000) * 1000);
  }

  private bumpStatus(): void {
    this.status = Math.max(Date.now(), this.status + 1);
  }

  // ---- retention ----------------------------------------------------------------------------

  startRetention(): void {
    if (this.retentionTimer) return;
    this.retentionTimer = setInterval(() => {
      this.runRetention().catch((err) => this.log.error({ err }, "retention failed"));
    }, this.opts.retentionMonitorIntervalMs);
    this.retentionTimer.unref();
  }

  /** Removes LTX files older than data.retention; the newest file of a database is always kept. */
  async runRetention(now = Date.now()): Promise<number> {
    let removed = 0;
    for (const db of this.dbs.values()) removed += await enforceRetention(db, this.opts.retentionMs, now);
    return removed;
  }

  close(): void {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.retentionTimer = null;
    for (const db of this.dbs.values()) db.closeFiles();
  }

  private newDatabase(name: string): Database {
    const db = new Database({
      name,
      dir: path.join(this.dataDir, DBS_DIR, name),
      compress: this.opts.compress,
      skipSync: this.opts.skipSync,
      nodeId: this.nodeId,
      logger: this.log,
    });
    fs.mkdirSync(db.dir, { recursive: true });
    db.ltx.ensure();
    db.onCommit((ev) => {
      for (const fn of this.listeners) fn(ev);
    });
    return db;
  }
}

/** A database name is one file name in the mount's root, not one of the names the mount owns. */
export function validateDatabaseName(name: string): void {
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
    throw new StoreError("STORE_BAD_LTX", `${file}: expected 16 hex digits, found ${JSON.stringify(text.slice(0, 40))}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const id = randomBytes(8);
  id[0] &= 0x7f; // keep it positive as a signed 64-bit value for tools that print it signed
  const hex = id.toString("hex");
  fs.writeFileSync(file, `${hex}\n`);
  return BigInt(`0x${hex}`);
}
