import Database from "better-sqlite3";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "litefs-sqlite-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A ReadAt over an in-memory file image. */
export function readerOf(buf: Uint8Array): (offset: number, length: number) => Uint8Array {
  return (offset, length) => buf.subarray(offset, Math.min(buf.length, offset + length));
}

export function readFile(file: string): Buffer {
  return readFileSync(file);
}

/**
 * Reads a file from another process. Closing any fd of a file drops every POSIX lock this process
 * holds on it, so reading a database, -wal or -shm in-process while a better-sqlite3 connection of
 * this process has it open would silently strip that connection's SQLite locks.
 */
export function snapshotFile(file: string): Buffer {
  const run = spawnSync("/bin/cat", [file], { maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`cat ${file}: ${String(run.stderr)}`);
  return run.stdout;
}

/** Writes `page` as page `pgno` of a database image, growing it as needed. */
export function putPage(image: Buffer, pgno: number, page: Uint8Array): Buffer {
  const pageSize = page.length;
  const end = pgno * pageSize;
  const out = image.length >= end ? image : Buffer.concat([image, Buffer.alloc(end - image.length)]);
  out.set(page, (pgno - 1) * pageSize);
  return out;
}

export interface SqliteRun {
  child: ReturnType<typeof spawn>;
  /** True once the process has exited. */
  exited: () => boolean;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/**
 * Runs the sqlite3 CLI asynchronously (never execSync: the point is often that it blocks).
 * Each element of `sql` is one argument: SQL or a dot-command. `busyTimeoutMs` sets `.timeout`,
 * SQLite's busy handler, so a blocked client waits instead of failing at once; the process itself
 * is killed after `killAfterMs`.
 */
export function runSqlite(
  db: string,
  sql: string | string[],
  opts: { busyTimeoutMs?: number; killAfterMs?: number } = {},
): SqliteRun {
  const args = [];
  if (opts.busyTimeoutMs !== undefined) args.push("-cmd", `.timeout ${opts.busyTimeoutMs}`);
  args.push(db, ...(Array.isArray(sql) ? sql : [sql]));
  const child = spawn("/usr/bin/sqlite3", args, {
    stdio: ["ignore", "pipe", "pipe"],
    timeout: opts.killAfterMs ?? 30_000,
  });
  let stdout = "";
  let stderr = "";
  let exited = false;
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      exited = true;
      resolve({ code, stdout, stderr });
    });
  });
  return { child, exited: () => exited, done };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface HotJournal {
  /** The database file as it was before the transaction. */
  before: Buffer;
  /** Database file and journal copied while the transaction had spilled pages to the database. */
  db: Buffer;
  journal: Buffer;
}

/**
 * Runs a rollback-mode transaction big enough to spill dirty pages into the database file (tiny
 * cache) and to grow it, copies the database and its journal mid-transaction, as a crash would
 * leave them, then rolls back. `file` is created fresh in a temporary directory of the caller's.
 */
export function makeHotJournal(file: string, synchronous: "FULL" | "OFF" = "FULL"): HotJournal {
  const db = new Database(file);
  db.pragma("journal_mode = DELETE");
  db.pragma(`synchronous = ${synchronous}`);
  db.exec("create table t(id integer primary key, v blob)");
  const insert = db.prepare("insert into t(v) values (randomblob(?))");
  for (let i = 0; i < 200; i++) insert.run(1000);
  const before = snapshotFile(file);

  db.pragma("cache_size = 5");
  db.exec("begin");
  for (let i = 0; i < 300; i++) insert.run(1000); // grows the file
  db.exec("update t set v = randomblob(900) where id % 3 = 0"); // rewrites existing pages
  const snapshot = { db: snapshotFile(file), journal: snapshotFile(`${file}-journal`) };
  db.exec("rollback");
  db.close();
  // The transaction really reached the database file, and grew it.
  if (snapshot.db.equals(before) || snapshot.db.length <= before.length) throw new Error("makeHotJournal: the transaction did not spill into and grow the database file");
  return { before, ...snapshot };
}
