import Database from "better-sqlite3";
import { existsSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  JOURNAL_HEADER_SIZE,
  JOURNAL_MAGIC,
  JOURNAL_PAGE_SIZE_OFFSET,
  JOURNAL_PERSIST_INVALIDATION_SIZE,
  JOURNAL_RECORD_COUNT_TO_EOF,
  SqliteFormatError,
  isJournalHeaderValid,
  isJournalPersistInvalidation,
  journalChecksum,
  parseJournalHeader,
  readJournalRecords,
  type JournalPlaybackEnd,
  type JournalRecord,
} from "../../src/sqlite/index.js";
import { makeHotJournal, putPage, readFile, readerOf, snapshotFile, tempDir, type HotJournal } from "./helpers.js";

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

const hotJournal = (opts: { synchronous?: "FULL" | "OFF" } = {}): HotJournal => makeHotJournal(path.join(dir, "hot.db"), opts.synchronous);

function playBack(journal: Buffer, pageSize?: number): { records: JournalRecord[]; end: JournalPlaybackEnd } {
  const records: JournalRecord[] = [];
  const it = readJournalRecords(readerOf(journal), journal.length, pageSize);
  for (;;) {
    const next = it.next();
    if (next.done) return { records, end: next.value };
    records.push(next.value);
  }
}

/** What a hot-journal rollback does to the database file. */
function rollBack(db: Buffer, journal: Buffer): Buffer {
  const { records, end } = playBack(journal);
  if (end.header === null) return db;
  let image: Buffer = Buffer.from(db);
  for (const r of records) image = putPage(image, r.pgno, r.data);
  return image.subarray(0, end.header.initialPageCount * end.header.pageSize);
}

describe("rollback journal", () => {
  it("reads the header SQLite wrote for a spilled transaction", () => {
    const { before, journal } = hotJournal();
    const h = parseJournalHeader(journal);
    expect(h).not.toBeNull();
    expect(h!.pageSize).toBe(4096);
    expect(h!.sectorSize).toBe(512);
    expect(h!.initialPageCount).toBe(before.length / 4096);
    expect(h!.recordCount).toBeGreaterThan(0);
    expect(h!.recordCount).not.toBe(JOURNAL_RECORD_COUNT_TO_EOF);
    expect(isJournalHeaderValid(journal)).toBe(true);
  });

  it("rolling back a hot journal restores the database byte for byte", () => {
    const { before, db, journal } = hotJournal();
    const { records, end } = playBack(journal);
    // Several spills means several segments, each behind its own header.
    const h = parseJournalHeader(journal)!;
    const firstSegmentEnd = h.sectorSize + h.recordCount * (h.pageSize + 8);
    expect(records.some((r) => r.offset > firstSegmentEnd)).toBe(true);
    // The last header is the one being filled, its magic not yet written.
    expect(end.reason).toBe("end-of-journal");
    expect(rollBack(db, journal).equals(before)).toBe(true);
  });

  it("agrees with SQLite's own rollback of the same hot journal", () => {
    const { before, db, journal } = hotJournal();
    const file = path.join(dir, "copy.db");
    writeFileSync(file, db);
    writeFileSync(`${file}-journal`, journal);
    const conn = new Database(file);
    conn.prepare("select count(*) from t").get(); // a reader rolls the hot journal back
    conn.close();
    expect(existsSync(`${file}-journal`)).toBe(false);
    expect(readFile(file).equals(rollBack(db, journal))).toBe(true);
    expect(readFile(file).equals(before)).toBe(true);
  });

  it("with synchronous=OFF the record count runs to the end of the file", () => {
    const { before, db, journal } = hotJournal({ synchronous: "OFF" });
    expect(parseJournalHeader(journal)!.recordCount).toBe(JOURNAL_RECORD_COUNT_TO_EOF);
    expect(rollBack(db, journal).equals(before)).toBe(true);
  });

  it("stops at the first record whose checksum fails, like pager_playback", () => {
    const { journal } = hotJournal();
    const all = playBack(journal).records;
    const victim = all[3];
    const damaged = Buffer.from(journal);
    // The checksum samples the byte 200 before the end of the page.
    damaged[victim.offset + 4 + 4096 - 200] ^= 0xff;
    const { records, end } = playBack(damaged);
    expect(records.map((r) => r.pgno)).toEqual(all.slice(0, 3).map((r) => r.pgno));
    expect(end).toMatchObject({ reason: "checksum-mismatch", offset: victim.offset });
  });

  it("stops at a record cut short by the end of the file", () => {
    const { journal } = hotJournal();
    const all = playBack(journal).records;
    const cut = journal.subarray(0, all[2].offset + 100);
    const { records, end } = playBack(cut);
    expect(records).toHaveLength(2);
    expect(end).toMatchObject({ reason: "short-record", offset: all[2].offset });
  });

  it("computes the record checksum from the nonce and every 200th byte", () => {
    const { journal } = hotJournal();
    const h = parseJournalHeader(journal)!;
    const first = h.sectorSize;
    const page = journal.subarray(first + 4, first + 4 + h.pageSize);
    expect(journalChecksum(h.nonce, page)).toBe(journal.readUInt32BE(first + 4 + h.pageSize));
    const bumped = Buffer.from(page);
    bumped[0] ^= 1; // byte 0 is never sampled
    expect(journalChecksum(h.nonce, bumped)).toBe(journalChecksum(h.nonce, page));
    bumped[h.pageSize - 200] ^= 1;
    expect(journalChecksum(h.nonce, bumped)).not.toBe(journalChecksum(h.nonce, page));
  });

  it("sees no header before the journal is synced: nothing reached the database", () => {
    const file = path.join(dir, "small.db");
    const db = new Database(file);
    db.exec("create table t(x); insert into t values (1)");
    db.exec("begin; insert into t values (2)");
    const journal = snapshotFile(`${file}-journal`);
    db.exec("rollback");
    db.close();
    expect(journal.length).toBeGreaterThan(0);
    expect(parseJournalHeader(journal)).toBeNull();
    expect(isJournalHeaderValid(journal)).toBe(false);
    expect(playBack(journal)).toMatchObject({ records: [], end: { header: null } });
  });

  it("recognises the PERSIST commit: 28 zero bytes over the header", () => {
    const file = path.join(dir, "persist.db");
    const db = new Database(file);
    db.pragma("journal_mode = PERSIST");
    db.exec("create table t(x); insert into t values (randomblob(5000))");
    db.close();
    const journal = readFile(`${file}-journal`);
    expect(journal.length).toBeGreaterThan(JOURNAL_HEADER_SIZE);
    expect(journal.subarray(0, JOURNAL_PERSIST_INVALIDATION_SIZE).every((b) => b === 0)).toBe(true);
    expect(journal.subarray(512).some((b) => b !== 0)).toBe(true); // the records stay behind
    expect(parseJournalHeader(journal)).toBeNull();

    expect(isJournalPersistInvalidation(0, new Uint8Array(28))).toBe(true);
    expect(isJournalPersistInvalidation(512, new Uint8Array(28))).toBe(false);
    // A new transaction's header also starts zeroed, but is a whole sector with a nonce.
    const freshHeader = new Uint8Array(512);
    freshHeader[12] = 0x5a;
    expect(isJournalPersistInvalidation(0, freshHeader)).toBe(false);
    expect(isJournalPersistInvalidation(0, freshHeader.subarray(0, 28))).toBe(false);
  });

  it("reports a header with magic but torn fields", () => {
    const short = Buffer.concat([JOURNAL_MAGIC, Buffer.alloc(4)]);
    expect(() => parseJournalHeader(short)).toThrow(SqliteFormatError);
    expect(() => parseJournalHeader(short)).toThrow(expect.objectContaining({ code: "JOURNAL_TORN_HEADER" }));

    const { journal } = hotJournal();
    const torn = Buffer.from(journal.subarray(0, 512));
    torn.writeUInt32BE(1000, JOURNAL_PAGE_SIZE_OFFSET);
    expect(() => parseJournalHeader(torn)).toThrow(expect.objectContaining({ code: "JOURNAL_TORN_HEADER" }));
    expect(isJournalHeaderValid(torn)).toBe(false);
    // pager.c plays nothing back from such a journal.
    expect(playBack(Buffer.concat([torn, journal.subarray(512)])).records).toEqual([]);
  });

  it("judges a write of just magic and record count on what it holds", () => {
    const armed = Buffer.concat([JOURNAL_MAGIC, Buffer.from([0, 0, 0, 5])]);
    expect(isJournalHeaderValid(armed)).toBe(true);
    expect(isJournalHeaderValid(Buffer.alloc(12))).toBe(false);
  });

  it("refuses to play back pages of a different size than the caller's", () => {
    const { journal } = hotJournal();
    expect(() => playBack(journal, 1024)).toThrow(
      expect.objectContaining({ code: "JOURNAL_PAGE_SIZE_MISMATCH" }),
    );
    expect(playBack(journal, 4096).records.length).toBeGreaterThan(0);
  });

  it("skips pages the transaction added: the truncation removes them", () => {
    // Same journal, but claim the database had fewer pages before: records beyond are skipped.
    const { journal } = hotJournal();
    const h = parseJournalHeader(journal)!;
    const all = playBack(journal).records;
    const limit = Math.max(...all.map((r) => r.pgno)) - 1;
    const shrunk = Buffer.from(journal);
    shrunk.writeUInt32BE(limit, 16);
    const kept = playBack(shrunk).records;
    expect(kept.length).toBeLessThan(all.length);
    expect(kept.every((r) => r.pgno <= limit)).toBe(true);
    expect(h.initialPageCount).toBeGreaterThan(limit);
  });
});
