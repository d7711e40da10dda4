/**
 * The SQLite workloads of the mount benchmark. Each takes a folder (the mount or a plain
 * directory) and runs identical code there, so the two timings differ only by the filesystem.
 * Only the measured section is timed (process.hrtime.bigint); setup (schema, pre-fill,
 * warm-up) is not.
 */
import * as path from "node:path";
import Database from "better-sqlite3";

export interface WorkloadParams {
  /** Single-row autocommit inserts per insert workload. */
  inserts: number;
  /** Rows pre-filled for the lookup workload. */
  lookupRows: number;
  /** Timed point lookups. */
  lookups: number;
  /** Rows of the bulk insert (one transaction). */
  bulkRows: number;
}

export interface WorkloadResult {
  /** Wall time of the measured section, in milliseconds. */
  ms: number;
  /** Operations in the measured section (transactions or lookups). */
  ops: number;
  /** Write transactions committed in the measured section (for the LTX sanity check). */
  txns: number;
}

export interface Workload {
  key: string;
  title: string;
  /** Database file name inside the folder. */
  db: string;
  /** What one op is, for the rate column. */
  unit: string;
  run(dir: string, p: WorkloadParams, hooks: Hooks): WorkloadResult;
}

/** Called around the measured section (the driver snapshots LTX counts and debug logs there). */
export interface Hooks {
  beforeMeasure?(): void;
}

const SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, value INTEGER NOT NULL)";
const INSERT = "INSERT INTO t (id, name, value) VALUES (?, ?, ?)";

/** ~100 bytes of text per row, deterministic, so both runs write the same pages. */
function rowName(i: number): string {
  const s = `user-${i}-${(i * 2654435761) >>> 0}-`;
  return s.padEnd(100, "abcdefghijklmnopqrstuvwxyz0123456789");
}

/** xorshift32: the same "random" ids on both targets. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function open(file: string, journalMode: "DELETE" | "WAL", synchronous: "FULL" | "NORMAL"): Database.Database {
  const db = new Database(file);
  const mode = db.pragma(`journal_mode = ${journalMode}`, { simple: true }) as string;
  if (mode.toUpperCase() !== journalMode) throw new Error(`${file}: journal_mode is ${mode}, wanted ${journalMode}`);
  db.pragma(`synchronous = ${synchronous}`);
  return db;
}

function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function autocommitInserts(file: string, journalMode: "DELETE" | "WAL", synchronous: "FULL" | "NORMAL", n: number, hooks: Hooks): WorkloadResult {
  const db = open(file, journalMode, synchronous);
  try {
    db.exec(SCHEMA);
    const insert = db.prepare(INSERT);
    const names = Array.from({ length: n }, (_, i) => rowName(i + 1));
    hooks.beforeMeasure?.();
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) insert.run(i + 1, names[i], i);
    const ms = elapsedMs(start);
    return { ms, ops: n, txns: n };
  } finally {
    db.close();
  }
}

export const WORKLOADS: Workload[] = [
  {
    key: "delete-full",
    title: "autocommit inserts, DELETE/FULL",
    db: "delete-full.db",
    unit: "tx",
    run: (dir, p, hooks) => autocommitInserts(path.join(dir, "delete-full.db"), "DELETE", "FULL", p.inserts, hooks),
  },
  {
    key: "wal-normal",
    title: "autocommit inserts, WAL/NORMAL",
    db: "wal-normal.db",
    unit: "tx",
    run: (dir, p, hooks) => autocommitInserts(path.join(dir, "wal-normal.db"), "WAL", "NORMAL", p.inserts, hooks),
  },
  {
    key: "lookups",
    title: "point lookups, warm cache",
    db: "lookups.db",
    unit: "lookup",
    run(dir, p, hooks) {
      // Default journal mode (DELETE) and page cache (2 MiB, smaller than the ~13 MiB table), so
      // lookups read pages through the OS page cache: that is what differs between the two.
      const db = open(path.join(dir, "lookups.db"), "DELETE", "FULL");
      try {
        db.exec(SCHEMA);
        const insert = db.prepare(INSERT);
        db.transaction(() => {
          for (let i = 1; i <= p.lookupRows; i++) insert.run(i, rowName(i), i);
        })();
        const select = db.prepare("SELECT id, name, value FROM t WHERE id = ?");
        // Warm-up: a full scan and one pass of random lookups (another seed than the timed pass).
        db.prepare("SELECT sum(length(name)) FROM t").pluck().get();
        const warm = prng(7);
        for (let i = 0; i < p.lookups; i++) select.get((warm() % p.lookupRows) + 1);
        const ids = new Int32Array(p.lookups);
        const next = prng(42);
        for (let i = 0; i < ids.length; i++) ids[i] = (next() % p.lookupRows) + 1;
        hooks.beforeMeasure?.();
        let found = 0;
        const start = process.hrtime.bigint();
        for (let i = 0; i < ids.length; i++) if (select.get(ids[i])) found++;
        const ms = elapsedMs(start);
        if (found !== ids.length) throw new Error(`lookups: found ${found} of ${ids.length} rows`);
        return { ms, ops: ids.length, txns: 0 };
      } finally {
        db.close();
      }
    },
  },
  {
    key: "bulk",
    title: "bulk insert, one transaction",
    db: "bulk.db",
    unit: "row",
    run(dir, p, hooks) {
      const db = open(path.join(dir, "bulk.db"), "DELETE", "FULL");
      try {
        db.exec(SCHEMA);
        const insert = db.prepare(INSERT);
        const names = Array.from({ length: p.bulkRows }, (_, i) => rowName(i + 1));
        const fill = db.transaction(() => {
          for (let i = 0; i < p.bulkRows; i++) insert.run(i + 1, names[i], i);
        });
        hooks.beforeMeasure?.();
        const start = process.hrtime.bigint();
        fill();
        const ms = elapsedMs(start);
        return { ms, ops: p.bulkRows, txns: 1 };
      } finally {
        db.close();
      }
    },
  },
];
