import Database from "better-sqlite3";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DB_PAGE_SIZE_OFFSET,
  PENDING_BYTE,
  SqliteFormatError,
  isDatabaseHeader,
  lockPageNumber,
  pageSizeFromHeader,
  parseDatabaseHeader,
} from "../../src/sqlite/index.js";
import { readFile, tempDir } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

function sqliteVersionNumber(db: Database.Database): number {
  const v = (db.prepare("select sqlite_version() as v").get() as { v: string }).v;
  const [major, minor, patch] = v.split(".").map(Number);
  return major * 1_000_000 + minor * 1000 + patch;
}

describe("database header", () => {
  it("reads the fields SQLite wrote for a rollback-journal database", () => {
    const file = path.join(dir, "a.db");
    const db = new Database(file);
    db.pragma("page_size = 8192");
    db.pragma("user_version = 7");
    db.pragma("application_id = 4660");
    db.exec("create table t(x); insert into t values (randomblob(20000));");
    const pageCount = db.pragma("page_count", { simple: true }) as number;
    const version = sqliteVersionNumber(db);
    db.close();

    const h = parseDatabaseHeader(readFile(file));
    expect(h.pageSize).toBe(8192);
    expect(h.writeVersion).toBe(1);
    expect(h.readVersion).toBe(1);
    expect(h.isWal).toBe(false);
    expect(h.pageCount).toBe(pageCount);
    expect(h.pageCountValid).toBe(true);
    expect(h.userVersion).toBe(7);
    expect(h.applicationId).toBe(4660);
    expect(h.textEncoding).toBe(1);
    expect(h.schemaFormat).toBe(4);
    expect(h.sqliteVersion).toBe(version);
    expect(h.versionValidFor).toBe(h.changeCounter);
  });

  it("sees WAL mode in the version bytes", () => {
    const file = path.join(dir, "w.db");
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.exec("create table t(x)");
    db.close();
    const h = parseDatabaseHeader(readFile(file));
    expect([h.writeVersion, h.readVersion, h.isWal]).toEqual([2, 2, true]);
  });

  it("decodes page size 65536, stored as 1", () => {
    const file = path.join(dir, "big.db");
    const db = new Database(file);
    db.pragma("page_size = 65536");
    db.exec("create table t(x)");
    db.close();
    const buf = readFile(file);
    expect(buf.readUInt16BE(DB_PAGE_SIZE_OFFSET)).toBe(1);
    expect(pageSizeFromHeader(buf)).toBe(65536);
    expect(parseDatabaseHeader(buf).pageSize).toBe(65536);
  });

  it("rejects content that is not an SQLite database with a typed error", () => {
    const text = Buffer.from("hello, this is not a database".padEnd(100, "."));
    expect(isDatabaseHeader(text)).toBe(false);
    const err = (() => {
      try {
        parseDatabaseHeader(text);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(SqliteFormatError);
    expect((err as SqliteFormatError).code).toBe("SQLITE_NOT_A_DATABASE");
  });

  it("rejects a header cut short and a page size SQLite never writes", () => {
    const file = path.join(dir, "a.db");
    const db = new Database(file);
    db.exec("create table t(x)");
    db.close();
    const buf = readFile(file);
    expect(isDatabaseHeader(buf.subarray(0, 16))).toBe(true);
    expect(() => parseDatabaseHeader(buf.subarray(0, 99))).toThrow(
      expect.objectContaining({ code: "SQLITE_NOT_A_DATABASE" }),
    );
    const bad = Buffer.from(buf.subarray(0, 100));
    bad.writeUInt16BE(1000, DB_PAGE_SIZE_OFFSET);
    expect(() => parseDatabaseHeader(bad)).toThrow(expect.objectContaining({ code: "SQLITE_BAD_PAGE_SIZE" }));
  });

  it("places the lock page where PENDING_BYTE falls", () => {
    // A database bigger than 1 GiB skips this page; check the arithmetic at its edges.
    for (const pageSize of [512, 4096, 65536]) {
      const pgno = lockPageNumber(pageSize);
      expect((pgno - 1) * pageSize).toBeLessThanOrEqual(PENDING_BYTE);
      expect(pgno * pageSize).toBeGreaterThan(PENDING_BYTE);
    }
  });

  it("is not fooled by a file that merely starts with SQLite", () => {
    const file = path.join(dir, "x");
    writeFileSync(file, "SQLite format 2\0".padEnd(100, "\0"));
    expect(isDatabaseHeader(readFile(file))).toBe(false);
  });
});
