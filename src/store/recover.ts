import * as fs from "node:fs";
import { LtxError, Position, decodeLtx, lockPgno, pageChecksum, formatChecksum, formatTxid } from "../ltx/index.js";
import { isDatabaseHeader, parseDatabaseHeader } from "../sqlite/index.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import { takeSavedChecksums } from "./saved-checksums.js";
import { foldWal, rollbackJournal } from "./sqlite-repair.js";

/**
 * Startup recovery of one database, before the mount serves it (DESIGN.md section 5), in order:
 * roll back a hot journal; reconcile the WAL with the last LTX and checkpoint it ourselves;
 * re-apply the last LTX; compute page checksums; refuse to start when they disagree with it.
 * Everything here is synchronous I/O on the backing files, which nothing else has open yet.
 */
export function recoverDatabase(db: Database): void {
  db.ltx.removeLeftovers();
  const last = lastCompleteLtx(db);
  // Before anything below writes the file: a clean shutdown's checksums, if the file is as it left it.
  const saved = takeSavedChecksums(db, last ? new Position(last.header.maxTxid, last.trailer.postApplyChecksum) : null);

  rollbackHotJournal(db);
  checkpointWal(db, last?.header ?? null);

  if (last && last.header.commit === 0) {
    // The database was dropped: its files stay gone, its position stays.
    db.files.database.unlink();
    db.setPosition(new Position(last.header.maxTxid, last.trailer.postApplyChecksum), true);
    db.log.info({ txid: last.header.maxTxid }, "recovered dropped database");
    return;
  }

  const file = db.files.database;
  if (last) {
    const { header } = last;
    db.pageSize = header.pageSize;
    for (const page of last.pages) file.write(page.data, page.data.length, (page.pgno - 1) * header.pageSize);
    file.truncate(header.commit * header.pageSize);
    if (!db.skipSync) file.sync();
  } else {
    db.refreshPageSize();
  }

  // Re-applying the last LTX to the file a clean shutdown left changed no byte of it.
  if (saved && last && saved.length === last.header.commit) {
    db.checksums.load(saved);
    db.log.info({ pages: saved.length }, "page checksums taken from the clean shutdown");
  } else {
    computeChecksums(db);
  }
  if (!last) {
    db.setPosition(Position.ZERO, !file.exists());
    if (db.checksums.pageCount > 0) adoptExistingDatabase(db);
    return;
  }

  const expected = last.trailer.postApplyChecksum;
  let found = db.checksums.checksum;
  if (found !== expected) {
    const damaged = found;
    const replayed = replayTrailingFiles(db);
    if (replayed > 0) {
      computeChecksums(db);
      found = db.checksums.checksum;
      // Said out loud: a file that changed behind our back (a crash mid-apply, or damage on disk).
      if (found === expected) {
        db.log.warn(
          { file: file.path, found: formatChecksum(damaged), expected: formatChecksum(expected), replayed },
          `database ${db.name}: ${file.path} had checksum ${formatChecksum(damaged)}, the last LTX says ${formatChecksum(expected)}; repaired by replaying the last ${replayed} LTX files`,
        );
      }
    }
  }
  if (found !== expected) {
    throw new StoreError(
      "STORE_CHECKSUM_MISMATCH",
      `database ${db.name}: checksum mismatch at TXID ${formatTxid(last.header.maxTxid)}: last LTX ${last.path} says ` +
        `${formatChecksum(expected)}, the database file has ${formatChecksum(found)}; refusing to start`,
    );
  }
  db.setPosition(new Position(last.header.maxTxid, expected));
  db.log.info({ pos: db.position.toString() }, "database recovered");
}

/**
 * LTX files written in the last moments before a crash may not all be on disk whole: a commit's
 * file is fsynced at SQLite's next fsync or by the Store's timer within a second (a power cut
 * can tear any of those), and a daemon killed while writing one leaves it partial (its commit
 * was never acknowledged). Every file written within this long of the newest one is verified.
 */
const UNSYNCED_WINDOW_MS = 10_000;

/**
 * The newest LTX file that is whole (its file checksum verifies), decoded, with its path; null
 * when there is none. Torn (short) files among the newest ones are removed with every file after
 * them (the history must stay a chain); any other bad file, or one older than the window, refuses
 * the start, as damage that no crash of ours explains.
 */
function lastCompleteLtx(db: Database): (ReturnType<typeof decodeLtx> & { path: string }) | null {
  const files = db.ltx.list();
  if (files.length === 0) return null;
  const newestMtime = mtimeOf(files[files.length - 1].path);
  let good: (ReturnType<typeof decodeLtx> & { path: string }) | null = null;
  let firstTorn = -1;
  let i = files.length - 1;
  for (; i >= 0; i--) {
    const f = files[i];
    const recent = i === files.length - 1 || mtimeOf(f.path) >= newestMtime - UNSYNCED_WINDOW_MS;
    if (!recent && (good || firstTorn < 0)) break;
    try {
      const decoded = decodeLtx(fs.readFileSync(f.path), f.path);
      good ??= { ...decoded, path: f.path };
    } catch (err) {
      // Only a short file is torn (a write cut off by a crash); a whole-length file that does
      // not verify is damage, and discarding it could drop a commit that was acknowledged.
      if (!recent || !isTruncation(err)) {
        throw new StoreError(
          "STORE_BAD_LTX",
          `database ${db.name}: cannot use ${i === files.length - 1 ? "its last LTX file" : "LTX file"} ${f.path}: ${(err as Error).message}; ` +
            `refusing to start (restore the file, or remove the database directory to resync it from the primary)`,
          { cause: err },
        );
      }
      firstTorn = i;
      good = null;
    }
  }
  if (firstTorn < 0) return good;
  const discarded = files.slice(firstTorn);
  db.ltx.remove(discarded);
  db.log.warn(
    { from: formatTxid(discarded[0].minTxid), to: formatTxid(discarded[discarded.length - 1].maxTxid), files: discarded.length },
    `database ${db.name}: discarded ${discarded.length} trailing LTX file(s) from TXID ${formatTxid(discarded[0].minTxid)} that a crash left incomplete (never fsynced: SQLite had not fsynced those commits either, or had not heard they completed)`,
  );
  return good;
}

function isTruncation(err: unknown): boolean {
  return err instanceof LtxError && err.code === "LTX_TRUNCATED";
}

function mtimeOf(file: string): number {
  return fs.statSync(file).mtimeMs;
}

/** At most this many trailing files are replayed (a replica applies up to 512 per batch). */
const MAX_REPLAY_FILES = 1024;

/**
 * A replica installs a batch of received files before it applies them together; a crash during
 * that apply leaves pages of the batch's earlier files unwritten, which re-applying the last
 * file alone cannot fix. Re-applying, in order, a run of files that starts at or before the
 * first one not fully applied always yields the state after the last one (later versions of a
 * page overwrite earlier ones; cuts and growth happen in order). So, when the last file alone did
 * not give its checksum: replay the trailing run of consecutive files (from the newest snapshot
 * in it, at most MAX_REPLAY_FILES). The caller checks the checksum again. Returns files replayed.
 */
function replayTrailingFiles(db: Database): number {
  const files = db.ltx.list();
  let first = files.length - 1;
  while (
    first > 0 &&
    files.length - first < MAX_REPLAY_FILES &&
    files[first].minTxid !== 1 &&
    files[first - 1].maxTxid + 1 === files[first].minTxid
  ) {
    first--;
  }
  if (first >= files.length - 1) return 0;
  const file = db.files.database;
  for (const f of files.slice(first)) {
    let ltx: ReturnType<typeof decodeLtx>;
    try {
      ltx = decodeLtx(fs.readFileSync(f.path), f.path);
    } catch (err) {
      db.log.warn({ file: f.path, err: (err as Error).message }, "cannot replay LTX file");
      return 0;
    }
    const { header } = ltx;
    for (const page of ltx.pages) file.write(page.data, page.data.length, (page.pgno - 1) * header.pageSize);
    file.truncate(header.commit * header.pageSize);
  }
  if (!db.skipSync) file.sync();
  db.log.warn({ files: files.length - first, from: files[first].minTxid }, "last LTX did not match the database; replayed the trailing LTX files (a batch was being applied)");
  return files.length - first;
}

/** A journal with a valid header left by a crash holds the pages to put back. */
function rollbackHotJournal(db: Database): void {
  const journal = db.files.journal;
  if (!journal.exists()) return;
  const size = journal.size();
  const file = db.files.database;
  const result = rollbackJournal(file.asRepairFile(), journal.asRepairFile());
  if (!result.valid) {
    db.log.warn({ size }, "journal has no valid header (torn or already invalidated); removing it, the last LTX decides the database");
    journal.unlink();
    return;
  }
  if (!db.skipSync) file.sync();
  journal.unlink();
  db.log.info({ restored: result.restored, pages: result.initialPageCount }, "rolled back hot journal");
}

/**
 * Copies the WAL's committed transactions that the last LTX covers into the database file and
 * removes the WAL. Frames past the last LTX were never acknowledged to SQLite (the LTX is written
 * before the commit write returns), so they are dropped. A WAL of another generation than the
 * last LTX's (other salts), or with an invalid header, is removed without being folded.
 */
function checkpointWal(db: Database, last: { walSalt1: number; walSalt2: number; walOffset: number; walSize: number } | null): void {
  const wal = db.files.wal;
  if (!wal.exists()) return;
  if (last && last.walSize > 0) {
    const file = db.files.database;
    const result = foldWal(file.asRepairFile(), wal.asRepairFile(), last.walOffset + last.walSize, {
      salt1: last.walSalt1,
      salt2: last.walSalt2,
    });
    if (result.folded) {
      if (!db.skipSync) file.sync();
      db.log.info({ pages: result.pages, dropped: result.dropped }, "checkpointed WAL during recovery");
    }
  }
  wal.unlink();
  db.files.shm.unlink();
}

/** Page checksums of the whole database file (lock page skipped). */
function computeChecksums(db: Database): void {
  db.checksums.clear();
  const file = db.files.database;
  if (!file.exists()) return;
  const size = file.size();
  if (size === 0) return;
  const first = file.readAt(0, 100);
  if (!isDatabaseHeader(first)) {
    throw new StoreError("STORE_NOT_A_DATABASE", `database ${db.name}: ${file.path} is not a SQLite database; refusing to start`);
  }
  const pageSize = parseDatabaseHeader(first).pageSize;
  db.pageSize = pageSize;
  const pageCount = Math.floor(size / pageSize);
  const lock = lockPgno(pageSize);
  const chunkPages = Math.max(1, Math.floor((4 << 20) / pageSize));
  const chunk = Buffer.allocUnsafe(chunkPages * pageSize);
  db.checksums.resize(pageCount);
  for (let first = 1; first <= pageCount; first += chunkPages) {
    const n = Math.min(chunkPages, pageCount - first + 1);
    file.read(chunk, n * pageSize, (first - 1) * pageSize);
    for (let i = 0; i < n; i++) {
      const pgno = first + i;
      if (pgno === lock) continue;
      db.checksums.set(pgno, pageChecksum(pgno, chunk.subarray(i * pageSize, (i + 1) * pageSize)));
    }
  }
}

/** A database file with no LTX history (copied into data.dir): record it as a TXID 1 snapshot. */
function adoptExistingDatabase(db: Database): void {
  const file = db.files.database;
  const pageSize = db.pageSize;
  const commit = db.checksums.pageCount;
  db.checksums.clear();
  const pgnos = Array.from({ length: commit }, (_, i) => i + 1);
  db.commitTransaction({ commit, pgnos, readPage: (pgno) => file.readAt((pgno - 1) * pageSize, pageSize), durable: true });
  db.log.info({ pos: db.position.toString() }, "existing database adopted as a snapshot");
}
