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
