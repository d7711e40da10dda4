import Database from "better-sqlite3";
import { closeSync, openSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OsError } from "../../src/os/errors.js";
import {
  DATABASE_LOCK_LEN,
  DATABASE_LOCK_START,
  lockShm,
  lockSqliteDatabase,
  ofdGetLock,
  ofdLock,
} from "../../src/os/ofd-lock.js";
import { PENDING_BYTE, SHARED_FIRST, SHARED_SIZE, SHM_LOCK_DMS } from "../../src/sqlite/index.js";
import { runSqlite, sleep, tempDir } from "../sqlite/helpers.js";

let dir: string;
let cleanup: () => void;
const fds: number[] = [];
beforeEach(() => ({ dir, cleanup } = tempDir("litefs-os-")));
afterEach(() => {
  for (const fd of fds.splice(0)) closeSync(fd);
  cleanup();
});

function open(file: string, flags = "r+"): number {
  const fd = openSync(file, flags);
  fds.push(fd);
  return fd;
}

function close(fd: number): void {
  fds.splice(fds.indexOf(fd), 1);
  closeSync(fd);
}

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
}

/** A rollback-journal database with one table and three rows, made by the sqlite3 CLI. */
async function makeDatabase(journalMode = "DELETE"): Promise<string> {
  const file = path.join(dir, "app.db");
  const run = await runSqlite(
    file,
    `PRAGMA journal_mode=${journalMode}; create table t(x); insert into t values (1), (2), (3);`,
  ).done;
  expect(run.code, run.stderr).toBe(0);
  return file;
}

describe("OFD locks", () => {
  it("two opens of the same file in one process exclude each other", () => {
    const file = path.join(dir, "f");
    writeFileSync(file, "x");
    const a = open(file);
    const b = open(file);
    expect(ofdLock(a, "write", 0, 10)).toBe(true);
    expect(ofdLock(b, "write", 5, 1)).toBe(false);
    expect(ofdLock(b, "read", 0, 1)).toBe(false);
    expect(ofdLock(b, "write", 10, 5)).toBe(true); // just past the range
    expect(ofdGetLock(b, "read", 0, 100)).toEqual({ kind: "write", start: 0, len: 10, pid: -1 });
    expect(ofdGetLock(a, "write", 0, 10)).toBeNull(); // an open file never conflicts with itself

    expect(ofdLock(a, "read", 100, 1)).toBe(true);
    expect(ofdLock(b, "read", 100, 1)).toBe(true); // read locks share
    expect(ofdLock(b, "write", 100, 1)).toBe(false);

    expect(ofdLock(a, "unlock", 0, 10)).toBe(true);
    expect(ofdLock(b, "write", 0, 10)).toBe(true);
  });

  it("belong to the open file: closing another fd keeps them, closing their own drops them", () => {
    const file = path.join(dir, "f");
    writeFileSync(file, "x");
    const a = open(file);
    const b = open(file);
    expect(ofdLock(a, "write", 0, 1)).toBe(true);
    close(open(file)); // would drop a POSIX lock of this process
    expect(ofdLock(b, "write", 0, 1)).toBe(false);
    close(a);
    expect(ofdLock(b, "write", 0, 1)).toBe(true);
  });

  it("a write lock converts to a read lock in place", () => {
    const file = path.join(dir, "f");
    writeFileSync(file, "x");
    const a = open(file);
    const b = open(file);
    expect(ofdLock(a, "write", 0, 1)).toBe(true);
    expect(ofdLock(a, "read", 0, 1)).toBe(true);
    expect(ofdLock(b, "read", 0, 1)).toBe(true);
    expect(ofdGetLock(b, "write", 0, 1)).toMatchObject({ kind: "read" });
  });

  it("reports other failures as OsError with the errno name", () => {
    const file = path.join(dir, "f");
    writeFileSync(file, "x");
    const closed = openSync(file, "r");
    closeSync(closed);
    const err = errorOf(() => ofdLock(closed, "write", 0, 1));
    expect(err).toBeInstanceOf(OsError);
    expect(err).toMatchObject({ code: "OS_SYSCALL_FAILED", errno: "EBADF", syscall: "fcntl" });

    const writeOnly = open(file, "w");
    expect(errorOf(() => ofdLock(writeOnly, "read", 0, 1))).toMatchObject({ errno: "EBADF" });
    expect(errorOf(() => ofdGetLock(-1, "read", 0, 1))).toMatchObject({ errno: "EBADF" });
    expect(errorOf(() => ofdLock(writeOnly, "write", -1, 1))).toBeInstanceOf(RangeError);
  });

  it("waits for a SQLite writer's POSIX lock when asked to, and sees who holds it", async () => {
    const file = await makeDatabase();
    const fd = open(file);
    // The CLI holds an EXCLUSIVE transaction open for a second.
    const writer = runSqlite(file, ["BEGIN EXCLUSIVE;", "insert into t values (4);", ".shell sleep 1", "COMMIT;"]);
    let holder = null;
    for (let i = 0; i < 400 && holder === null; i++) {
      holder = ofdGetLock(fd, "read", DATABASE_LOCK_START, DATABASE_LOCK_LEN);
      if (holder === null) await sleep(5);
    }
    expect(holder).toMatchObject({ kind: "write", pid: writer.child.pid });
    expect(lockSqliteDatabase(fd, "write")).toBe(false);
    const started = Date.now();
    expect(lockSqliteDatabase(fd, "write", { wait: true })).toBe(true); // blocks this thread
    expect(Date.now() - started).toBeGreaterThan(200);
    expect(lockSqliteDatabase(fd, "unlock")).toBe(true);
    expect((await writer.done).code).toBe(0);
    expect((await runSqlite(file, "select count(*) from t;").done).stdout.trim()).toBe("4");
  });
});

describe("SQLite's locks taken through the kernel", () => {
  it("a write lock on PENDING..SHARED makes sqlite3 writers and readers fail with 'database is locked'", async () => {
    const file = await makeDatabase();
    const fd = open(file);
    expect(lockSqliteDatabase(fd, "write")).toBe(true);
    expect(ofdGetLock(open(file), "read", PENDING_BYTE, 1)).not.toBeNull();

    const write = await runSqlite(file, "insert into t values (4);").done;
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain("database is locked");
    const read = await runSqlite(file, "select count(*) from t;").done;
    expect(read.code).not.toBe(0);
    expect(read.stderr).toContain("database is locked");

    expect(lockSqliteDatabase(fd, "unlock")).toBe(true);
    expect((await runSqlite(file, "insert into t values (4);").done).code).toBe(0);
    expect((await runSqlite(file, "select count(*) from t;").done).stdout.trim()).toBe("4");
  });

  it("the same write lock also stops clients of a WAL-mode database", async () => {
    const file = await makeDatabase("WAL");
    const fd = open(file);
    expect(lockSqliteDatabase(fd, "write")).toBe(true);
    const read = await runSqlite(file, "select count(*) from t;").done;
    expect(read.stderr).toContain("database is locked");
    expect(lockSqliteDatabase(fd, "unlock")).toBe(true);
    expect((await runSqlite(file, "select count(*) from t;").done).stdout.trim()).toBe("3");
  });

  it("a read lock on the SHARED range lets sqlite3 read but not commit", async () => {
    const file = await makeDatabase();
    const fd = open(file);
    expect(lockSqliteDatabase(fd, "read")).toBe(true);
    expect(ofdGetLock(open(file), "write", SHARED_FIRST, SHARED_SIZE)).toMatchObject({ kind: "read" });
    expect((await runSqlite(file, "select count(*) from t;").done).stdout.trim()).toBe("3");
    const write = await runSqlite(file, "insert into t values (4);").done;
    expect(write.stderr).toContain("database is locked");
    expect(lockSqliteDatabase(fd, "unlock")).toBe(true);
    expect((await runSqlite(file, "insert into t values (4);").done).code).toBe(0);
  });
});

describe("-shm locks on a WAL-mode database", () => {
  /**
   * A WAL database whose -shm stays initialised because this process keeps a connection open
   * (the connection's own POSIX locks on the -shm are dropped if this process closes any fd of
   * it, so the test closes the connection before its fds).
   */
  async function walDatabase(): Promise<{ file: string; holder: Database.Database; shm: number }> {
    const file = await makeDatabase("WAL");
    const holder = new Database(file);
    holder.exec("insert into t values (4)"); // frames in the WAL, a live wal-index
    const shm = openSync(`${file}-shm`, "r+");
    return { file, holder, shm };
  }

  function release(db: { holder: Database.Database; shm: number }): void {
    db.holder.close();
    closeSync(db.shm);
  }

  for (const [what, sql, expected] of [
    ["reader", "select count(*) from t;", "4"],
    ["writer", "insert into t values (5); select count(*) from t;", "5"],
  ] as const) {
    it(`holding WRITE, CKPT, RECOVER and READ0..4 blocks a sqlite3 ${what} until released`, async () => {
      const db = await walDatabase();
      try {
        expect(lockShm(db.shm, "write")).toBe(true);
        const client = runSqlite(db.file, sql, { busyTimeoutMs: 15_000, killAfterMs: 30_000 });
        await sleep(1500);
        expect(client.exited()).toBe(false);
        expect(lockShm(db.shm, "unlock")).toBe(true);
        const result = await client.done;
        expect(result.stderr).toBe("");
        expect(result.stdout.trim()).toBe(expected);
      } finally {
        release(db);
      }
    });
  }

  it("cannot be taken while a reader is inside a read transaction, and takes nothing then", async () => {
    const db = await walDatabase();
    const probe = openSync(`${db.file}-shm`, "r");
    try {
      const rows = db.holder.prepare("select x from t").iterate();
      rows.next(); // the read transaction stays open: a READ lock is held
      expect(lockShm(db.shm, "write")).toBe(false);
      // WRITE..RECOVER are free but DMS is held shared by every connection: all or nothing.
      expect(lockShm(db.shm, "write", [120, 121, 122, SHM_LOCK_DMS])).toBe(false);
      expect(ofdGetLock(probe, "write", 120, 3)).toBeNull();
      rows.return?.();
      expect(lockShm(db.shm, "write")).toBe(true);
      expect(ofdGetLock(probe, "read", 120, 8)).toMatchObject({ kind: "write", start: 120, len: 8 });
    } finally {
      release(db);
      closeSync(probe);
    }
  });
});
