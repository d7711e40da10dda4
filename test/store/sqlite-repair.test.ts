import Database from "better-sqlite3";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  JOURNAL_PAGE_SIZE_OFFSET,
  WAL_SALT1_OFFSET,
  parseJournalHeader,
  parseWalHeader,
  scanWal,
  walFrameSize,
  type WalTransaction,
} from "../../src/sqlite/index.js";
import { BackingFile } from "../../src/store/backing-file.js";
import { foldWal, rollbackJournal, type RepairFile } from "../../src/store/sqlite-repair.js";
import { makeHotJournal, readerOf, snapshotFile, tempDir, type HotJournal } from "../sqlite/helpers.js";

let dir: string;
let cleanup: () => void;
const open: BackingFile[] = [];
beforeEach(() => ({ dir, cleanup } = tempDir("litefs-repair-")));
afterEach(() => {
  for (const f of open.splice(0)) f.close();
  cleanup();
});

type Row = { id: number; v: Buffer };

/** Writes `bytes` to a fresh file in the temp dir and returns it as a RepairFile (via BackingFile). */
function fileWith(name: string, bytes: Uint8Array): { path: string; repair: RepairFile } {
  const file = path.join(dir, name);
  writeFileSync(file, bytes);
  const backing = new BackingFile(file);
  open.push(backing);
  return { path: file, repair: backing.asRepairFile() };
}

/** Opens a database file alone (no -wal or -journal next to it) and returns its rows and integrity. */
function inspect(file: string): { rows: Row[]; integrity: string } {
  expect(existsSync(`${file}-wal`)).toBe(false);
  expect(existsSync(`${file}-journal`)).toBe(false);
  const db = new Database(file);
  try {
    const integrity = db.pragma("integrity_check", { simple: true }) as string;
    const rows = db.prepare("select id, v from t order by id").all() as Row[];
    return { rows, integrity };
  } finally {
    db.close();
  }
}

interface RealWal {
  /** The database file before the WAL's first frame. */
  before: Buffer;
  wal: Buffer;
  /** The database file after SQLite checkpointed the whole WAL. */
  after: Buffer;
  /** Rows after each transaction of the WAL, in order. */
  rowsAfter: Row[][];
  transactions: WalTransaction[];
  pageSize: number;
}

/**
 * A database in WAL mode (autocheckpoint off) and a WAL holding several committed transactions:
 * single-row inserts, a big one that spills and rewrites pages mid-transaction and grows the
 * file, a delete, a VACUUM that shrinks the file, and a last insert.
 */
function makeRealWal(): RealWal {
  const file = path.join(dir, "wal-source.db");
  const db = new Database(file);
  db.pragma("page_size = 4096");
  db.pragma("journal_mode = WAL");
  db.pragma("wal_autocheckpoint = 0");
  db.exec("create table t(id integer primary key, v blob)");
  db.exec("insert into t values (0, x'00')");
  db.pragma("wal_checkpoint(TRUNCATE)");
  const before = snapshotFile(file);

  const rowsAfter: Row[][] = [];
  const rows = (): Row[] => db.prepare("select id, v from t order by id").all() as Row[];
  const insert = db.prepare("insert into t(id, v) values (?, randomblob(?))");
  for (let id = 1; id <= 5; id++) {
    insert.run(id, 300);
    rowsAfter.push(rows());
  }
  db.pragma("cache_size = 3");
  db.transaction(() => {
    for (let id = 100; id < 300; id++) insert.run(id, 700);
    db.exec("update t set v = randomblob(650) where id % 2 = 0");
  })();
  rowsAfter.push(rows());
  db.exec("delete from t where id >= 150");
  rowsAfter.push(rows());
  db.exec("vacuum");
  rowsAfter.push(rows());
  insert.run(6, 100);
  rowsAfter.push(rows());

  const wal = snapshotFile(`${file}-wal`);
  db.pragma("wal_checkpoint(TRUNCATE)");
  const after = snapshotFile(file);
  db.close();
  const scan = scanWal(readerOf(wal), wal.length);
  // One scanned transaction per SQL transaction, so rowsAfter[i] is the state after transactions[i].
  expect(scan.transactions).toHaveLength(rowsAfter.length);
  return { before, wal, after, rowsAfter, transactions: scan.transactions, pageSize: scan.header.pageSize };
}

function endOf(tx: WalTransaction): number {
  return tx.offset + tx.size;
}

describe("foldWal", () => {
  it("folds every committed transaction: the database file alone holds them all", () => {
    const real = makeRealWal();
    const db = fileWith("folded.db", real.before);
    const wal = fileWith("folded.wal", real.wal);
    const last = real.transactions.at(-1)!;

    const result = foldWal(db.repair, wal.repair, endOf(last));

    expect(result).toMatchObject({ folded: true, pageSize: 4096, dropped: 0, commitSize: last.commitSize });
    // Each page written once, in its latest version; pages above the final size (VACUUM shrank
    // the file) are not written at all.
    const written = new Set(real.transactions.flatMap((tx) => [...tx.pages.keys()]).filter((pgno) => pgno <= last.commitSize));
    expect(Math.max(...real.transactions.map((tx) => tx.commitSize))).toBeGreaterThan(last.commitSize);
    expect(result.pages).toBe(written.size);
    // Byte for byte what SQLite's own checkpoint produced (VACUUM shrank the file: pages above the
    // final commit size were skipped and the file truncated).
    expect(readFileSync(db.path).equals(real.after)).toBe(true);
    expect(readFileSync(db.path).length).toBe(last.commitSize * 4096);
    // The WAL is the caller's to remove.
    expect(readFileSync(wal.path).equals(real.wal)).toBe(true);
    const { rows, integrity } = inspect(db.path);
    expect(integrity).toBe("ok");
    expect(rows).toEqual(real.rowsAfter.at(-1));
  });

  it("truncates the database file to the final commit size when the WAL shrank it", () => {
    const file = path.join(dir, "shrink-source.db");
    const source = new Database(file);
    source.pragma("journal_mode = WAL");
    source.pragma("wal_autocheckpoint = 0");
    source.exec("create table t(id integer primary key, v blob)");
    const insert = source.prepare("insert into t(id, v) values (?, randomblob(1000))");
    source.transaction(() => {
      for (let id = 1; id <= 100; id++) insert.run(id);
    })();
    source.pragma("wal_checkpoint(TRUNCATE)");
    const before = snapshotFile(file);
    source.exec("delete from t where id > 10");
    source.exec("vacuum");
    const walBytes = snapshotFile(`${file}-wal`);
    source.pragma("wal_checkpoint(TRUNCATE)");
    const after = snapshotFile(file);
    source.close();
    expect(after.length).toBeLessThan(before.length);

    const db = fileWith("shrink.db", before);
    const wal = fileWith("shrink.wal", walBytes);
    const result = foldWal(db.repair, wal.repair, walBytes.length);
    expect(result.commitSize * 4096).toBe(after.length);
    expect(readFileSync(db.path).equals(after)).toBe(true);
    const { rows, integrity } = inspect(db.path);
    expect(integrity).toBe("ok");
    expect(rows.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
  });

  it("with committedEnd at an earlier transaction's end, drops the transactions after it", () => {
    const real = makeRealWal();
    const n = real.transactions.length;
    for (let k = 0; k < n; k++) {
      const db = fileWith(`cut-${k}.db`, real.before);
      const wal = fileWith(`cut-${k}.wal`, real.wal);
      const result = foldWal(db.repair, wal.repair, endOf(real.transactions[k]));
      expect(result.folded).toBe(true);
      expect(result.dropped).toBe(n - 1 - k);
      expect(result.commitSize).toBe(real.transactions[k].commitSize);
      expect(readFileSync(db.path).length).toBe(real.transactions[k].commitSize * 4096);
      const { rows, integrity } = inspect(db.path);
      expect(integrity, `cut after transaction ${k}`).toBe("ok");
      expect(rows, `cut after transaction ${k}`).toEqual(real.rowsAfter[k]);
    }
  });

  it("a committedEnd inside a transaction does not fold that transaction", () => {
    const real = makeRealWal();
    const big = 5; // the spilling transaction: many frames
    const tx = real.transactions[big];
    expect(tx.frameCount).toBeGreaterThan(2);
    const db = fileWith("mid.db", real.before);
    const wal = fileWith("mid.wal", real.wal);
    const result = foldWal(db.repair, wal.repair, tx.offset + walFrameSize(4096));
    expect(result.dropped).toBe(real.transactions.length - big);
    expect(inspect(db.path).rows).toEqual(real.rowsAfter[big - 1]);
  });

  it("with committedEnd before the first transaction, folds nothing and leaves the database as it was", () => {
    const real = makeRealWal();
    const db = fileWith("none.db", real.before);
    const wal = fileWith("none.wal", real.wal);
    const result = foldWal(db.repair, wal.repair, real.transactions[0].offset);
    expect(result).toEqual({ folded: true, pages: 0, pageSize: 4096, dropped: real.transactions.length, commitSize: 0 });
    expect(readFileSync(db.path).equals(real.before)).toBe(true);
  });

  it("with the salts of the WAL folds it; with other salts does nothing", () => {
    const real = makeRealWal();
    const { salt1, salt2 } = parseWalHeader(real.wal);
    const end = endOf(real.transactions.at(-1)!);

    const other = fileWith("other.db", real.before);
    const otherWal = fileWith("other.wal", real.wal);
    for (const salts of [
      { salt1: (salt1 + 1) >>> 0, salt2 },
      { salt1, salt2: (salt2 ^ 0x80000000) >>> 0 },
    ]) {
      const result = foldWal(other.repair, otherWal.repair, end, salts);
      expect(result).toEqual({ folded: false, pages: 0, pageSize: 0, dropped: 0, commitSize: 0 });
      expect(readFileSync(other.path).equals(real.before)).toBe(true);
    }

    const same = fileWith("same.db", real.before);
    const sameWal = fileWith("same.wal", real.wal);
    expect(foldWal(same.repair, sameWal.repair, end, { salt1, salt2 }).folded).toBe(true);
    expect(readFileSync(same.path).equals(real.after)).toBe(true);
  });

  it("does nothing when the WAL header is invalid or missing", () => {
    const real = makeRealWal();
    const end = endOf(real.transactions.at(-1)!);
    const corrupt = Buffer.from(real.wal);
    corrupt[WAL_SALT1_OFFSET] ^= 0xff; // the header checksum no longer matches
    for (const [name, bytes] of [
      ["corrupt", corrupt],
      ["short", real.wal.subarray(0, 20)],
      ["empty", Buffer.alloc(0)],
    ] as const) {
      const db = fileWith(`${name}.db`, real.before);
      const wal = fileWith(`${name}.wal`, bytes);
      expect(foldWal(db.repair, wal.repair, end).folded, name).toBe(false);
      expect(readFileSync(db.path).equals(real.before), name).toBe(true);
    }
  });

  it("sector padding after a commit frame does not count: an LTX's end and the capture's end agree", () => {
    // psow=0 and synchronous=FULL: the sqlite3 CLI repeats each commit frame to the next sector
    // boundary. A better-sqlite3 connection keeps the CLI's close from checkpointing the WAL.
    const file = path.join(dir, "padded.db");
    const holder = new Database(file);
    let before: Buffer;
    let walBytes: Buffer;
    try {
      holder.pragma("page_size = 512");
      holder.pragma("journal_mode = WAL");
      holder.exec("create table t(id integer primary key, v blob)");
      holder.pragma("wal_checkpoint(TRUNCATE)");
      before = snapshotFile(file);
      const sql = [1, 2, 3].map((id) => `insert into t values (${id}, randomblob(100));`).join("");
      const run = spawnSync("/usr/bin/sqlite3", [`file:${file}?psow=0`, `PRAGMA synchronous=FULL; ${sql}`], { timeout: 30_000 });
      expect(run.status, String(run.stderr)).toBe(0);
      walBytes = snapshotFile(`${file}-wal`);
    } finally {
      holder.close();
    }
    const scan = scanWal(readerOf(walBytes), walBytes.length);
    expect(scan.transactions).toHaveLength(3);
    const frameSize = walFrameSize(512);
    for (const [k, tx] of scan.transactions.entries()) {
      expect(tx.paddingFrames).toBeGreaterThan(0);
      // What an LTX records (capture sees the commit frame before its padding is written), and
      // where WalCapture's committedEnd ends up (padding included).
      const commitFrameEnd = tx.offset + tx.size - tx.paddingFrames * frameSize;
      for (const committedEnd of [commitFrameEnd, endOf(tx)]) {
        const db = fileWith(`padded-${k}-${committedEnd}.db`, before);
        const wal = fileWith(`padded-${k}-${committedEnd}.wal`, walBytes);
        const result = foldWal(db.repair, wal.repair, committedEnd);
        expect(result.dropped).toBe(2 - k);
        expect(inspect(db.path).rows.map((r) => r.id)).toEqual([1, 2, 3].slice(0, k + 1));
      }
      // One byte short of the commit frame's end: the transaction is not committed there.
      const db = fileWith(`padded-${k}-short.db`, before);
      const wal = fileWith(`padded-${k}-short.wal`, walBytes);
      expect(foldWal(db.repair, wal.repair, commitFrameEnd - 1).dropped).toBe(3 - k);
    }
  });
});

const hotJournal = (synchronous: "FULL" | "OFF" = "FULL"): HotJournal => makeHotJournal(path.join(dir, "journal-source.db"), synchronous);

describe("rollbackJournal", () => {
  for (const synchronous of ["FULL", "OFF"] as const) {
    it(`restores the database file byte for byte (synchronous=${synchronous})`, () => {
      const hot = hotJournal(synchronous);
      const db = fileWith("hot.db", hot.db);
      const journal = fileWith("hot.db-journal.copy", hot.journal);

      const result = rollbackJournal(db.repair, journal.repair);

      const header = parseJournalHeader(hot.journal)!;
      expect(result).toMatchObject({ valid: true, pageSize: 4096, initialPageCount: header.initialPageCount });
      expect(result.restored).toBeGreaterThan(0);
      expect(readFileSync(db.path).equals(hot.before)).toBe(true);
      // The journal is the caller's to remove.
      expect(readFileSync(journal.path).equals(hot.journal)).toBe(true);
      const { rows, integrity } = inspect(db.path);
      expect(integrity).toBe("ok");
      expect(rows).toHaveLength(200);
    });
  }

  it("changes nothing when the journal has no valid header", () => {
    const hot = hotJournal();
    const header = parseJournalHeader(hot.journal)!;
    const noMagic = Buffer.from(hot.journal);
    noMagic.fill(0, 0, 8); // a journal invalidated by a commit, or never synced
    const persistInvalidated = Buffer.from(hot.journal);
    persistInvalidated.fill(0, 0, 28); // journal_mode=PERSIST's commit
    const tornPageSize = Buffer.from(hot.journal);
    tornPageSize.writeUInt32BE(1000, JOURNAL_PAGE_SIZE_OFFSET); // header write did not complete
    const cases: Array<[string, Buffer]> = [
      ["no magic", noMagic],
      ["persist-invalidated", persistInvalidated],
      ["torn page size", tornPageSize],
      ["header cut short", hot.journal.subarray(0, 20)],
      ["padded header not wholly in the file", hot.journal.subarray(0, header.sectorSize - 1)],
      ["empty", Buffer.alloc(0)],
    ];
    for (const [name, bytes] of cases) {
      const db = fileWith(`${name}.db`, hot.db);
      const journal = fileWith(`${name}.journal`, bytes);
      const result = rollbackJournal(db.repair, journal.repair);
      expect(result, name).toEqual({ valid: false, restored: 0, pageSize: 0, initialPageCount: 0 });
      expect(readFileSync(db.path).equals(hot.db), name).toBe(true);
    }
  });

  it("a valid header with no records yet only truncates the pages the transaction added", () => {
    const hot = hotJournal();
    const header = parseJournalHeader(hot.journal)!;
    const db = fileWith("empty-segment.db", hot.db);
    const journal = fileWith("empty-segment.journal", hot.journal.subarray(0, header.sectorSize));
    const result = rollbackJournal(db.repair, journal.repair);
    expect(result).toMatchObject({ valid: true, restored: 0, initialPageCount: header.initialPageCount });
    const after = readFileSync(db.path);
    expect(after.length).toBe(header.initialPageCount * 4096);
    expect(after.equals(hot.db.subarray(0, after.length))).toBe(true);
  });
});
