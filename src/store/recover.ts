import * as fs from "node:fs";
import * as path from "node:path";
import { LtxError, Position, decodeLtx, lockPgno, pageChecksum, formatChecksum, formatTxid } from "../ltx/index.js";
import { isDatabaseHeader, parseDatabaseHeader } from "../sqlite/index.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import { readPostApplyChecksum, type LtxFileInfo } from "./ltx-directory.js";
import { takeSavedChecksums } from "./saved-checksums.js";
import { foldWal, rollbackJournal } from "./sqlite-repair.js";

/** What startup does with a database whose file disagrees with its position and that no replay repairs. */
export type DamagePolicy =
  /** Refuse to start (a node that may be the primary: it holds the only copy it can trust). */
  | "refuse"
  /** Set the file aside and forget the position: the primary sends the database again (a replica). */
  | "resync";

export interface RecoveryResult {
  /** The database file disagreed with its position in a way no crash explains (reported, counted). */
  damaged: boolean;
}

type DecodedFile = ReturnType<typeof decodeLtx> & { path: string };

/**
 * Startup recovery of one database, before the mount serves it (DESIGN.md section 5), in order:
 * roll back a hot journal; reconcile the WAL with the last LTX and checkpoint it ourselves;
 * compare the database file's checksum with its position (the last LTX file's post-apply
 * checksum) and bring it there, replaying no more LTX files than the crash explains:
 *
 * - at the position: nothing to do;
 * - an apply was interrupted (the `applying` marker, apply-marker.ts): the files from the
 *   marker's TXID, and no others;
 * - at the last file's pre-apply checksum (a rollback-journal commit cut off after its LTX was
 *   written; the journal put the old pages back): the last file;
 * - at the position after an older file (files installed, never applied): the files after it.
 *
 * Anything else is damage: reported with the file and both checksums and counted; a replay of
 * the trailing run of files may still repair it; if not, `onDamage` decides (refuse to start, or
 * resync from the primary without serving the bad pages). Everything here is synchronous I/O on
 * the backing files, which nothing else has open yet.
 */
export function recoverDatabase(db: Database, onDamage: DamagePolicy = "refuse", readAhead?: Buffer): RecoveryResult {
  db.ltx.removeLeftovers();
  const last = lastCompleteLtx(db);
  // Before anything below writes the file: a clean shutdown's checksums, if the file is as it left it.
  const saved = takeSavedChecksums(db, last ? new Position(last.header.maxTxid, last.trailer.postApplyChecksum) : null);

  rollbackHotJournal(db);
  checkpointWal(db, last?.header ?? null);

  if (last && last.header.commit === 0) {
    // The database was dropped: its files stay gone, its position stays.
    db.files.database.unlink();
    db.applyMarker.clear();
    db.setPosition(new Position(last.header.maxTxid, last.trailer.postApplyChecksum), true);
    db.log.info({ txid: last.header.maxTxid }, "recovered dropped database");
    return { damaged: false };
  }

  const file = db.files.database;
  if (!last) {
    db.refreshPageSize();
    computeChecksums(db, readAhead);
    db.applyMarker.clear();
    db.setPosition(Position.ZERO, !file.exists());
    if (db.checksums.pageCount > 0) adoptExistingDatabase(db, readAhead);
    return { damaged: false };
  }

  const { header } = last;
  const expected = last.trailer.postApplyChecksum;
  db.pageSize = header.pageSize;
  const marker = db.applyMarker.read();
  // A clean shutdown's checksums stand for the file when it is exactly as that shutdown left it (saved-checksums.ts).
  let found: bigint | null;
  if (saved && saved.length === header.commit) {
    db.checksums.load(saved);
    db.log.info({ pages: saved.length }, "page checksums taken from the clean shutdown");
    found = db.checksums.checksum;
  } else {
    found = checksumOrNull(db, readAhead);
  }
  let damaged = false;
  let ok = found !== null && matchesCutTo(db, header.commit, expected);
  let interrupted = false;
  if (!ok && marker !== null) {
    // A batch of received files was being written: replay it, and only it.
    const run = marker === "unreadable" ? trailingRun(db) : runFrom(db, marker);
    if (run !== "none") {
      interrupted = true;
      ok = run !== null && replay(db, run, "an apply was interrupted") > 0 && checksumOrNull(db, readAhead) === expected;
    }
  }
  if (!ok && !interrupted && found !== null && found === header.preApplyChecksum) {
    // A rollback-journal commit cut off after its LTX was written: the journal put the old pages back.
    writeFile(db, last);
    db.checksums.apply(new Map(last.pages.map((p) => [p.pgno, p.checksum])), header.commit);
    ok = db.checksums.checksum === expected;
  }
  if (!ok && !interrupted && found !== null) {
    // Files installed but never applied (a crash before the apply marker existed): the file is at an older position.
    const run = runAfterPosition(db, found);
    if (run) ok = replay(db, run, "the database file was at the position after an older LTX file") > 0 && checksumOrNull(db, readAhead) === expected;
  }
  if (!ok) {
    damaged = true;
    const shown = found === null ? "no valid SQLite header" : `checksum ${formatChecksum(found)}`;
    db.log.warn(
      { file: file.path, found: found === null ? null : formatChecksum(found), expected: formatChecksum(expected), ltx: last.path },
      `database ${db.name}: ${file.path} has ${shown}, its position (TXID ${formatTxid(header.maxTxid)}, last LTX ${last.path}) says ${formatChecksum(expected)}, ` +
        `and no crash explains the difference: the file is damaged; replaying the retained LTX files to repair it`,
    );
    // Back to the newest snapshot, however long: it rewrites every page, and costs less than getting
    // the same history from the primary again. Without one, the newest files may still cover the damage.
    const whole = trailingRun(db, Infinity);
    // No run of several files: the last one alone still rewrites every page it holds (all of them, for a snapshot).
    const run = (whole && whole[0].minTxid === 1 ? whole : trailingRun(db)) ?? db.ltx.list().slice(-1);
    ok = run !== null && replay(db, run, "the database file is damaged") > 0 && checksumOrNull(db, readAhead) === expected;
    if (ok) {
      db.log.warn(
        { file: file.path, found: found === null ? null : formatChecksum(found), expected: formatChecksum(expected), replayed: run!.length },
        `database ${db.name}: ${file.path} had ${shown}, the last LTX says ${formatChecksum(expected)}; repaired by replaying the last ${run!.length} LTX files`,
      );
    } else {
      const has = found === null ? "no valid SQLite header" : formatChecksum(found);
      if (onDamage === "refuse") {
        throw new StoreError(
          "STORE_CHECKSUM_MISMATCH",
          `database ${db.name}: checksum mismatch at TXID ${formatTxid(header.maxTxid)}: last LTX ${last.path} says ` +
            `${formatChecksum(expected)}, the database file has ${has} (${file.path}); refusing to start ` +
            `(remove ${db.dir} to get the database again from the primary)`,
        );
      }
      setAsideForResync(db, last.path, expected, found);
      return { damaged };
    }
  }
  if (!db.skipSync) file.sync();
  db.applyMarker.clear();
  db.setPosition(new Position(header.maxTxid, expected));
  db.log.info({ pos: db.position.toString() }, "database recovered");
  return { damaged };
}

/**
 * A replica's damaged database that its own LTX files cannot repair: the file is moved aside (kept
 * for inspection, `database.damaged`), its LTX files and position forgotten, and it is not on the
 * mount until the primary sends it again (a replica reports no position for it, so it gets all of it).
 */
function setAsideForResync(db: Database, ltxPath: string, expected: bigint, found: bigint | null): void {
  const file = db.files.database;
  const aside = path.join(db.dir, "database.damaged");
  db.closeFiles();
  if (file.exists()) fs.renameSync(file.path, aside);
  for (const kind of ["journal", "wal", "shm"] as const) db.files[kind].unlink();
  db.ltx.remove(db.ltx.list());
  db.applyMarker.clear();
  db.checksums.clear();
  db.setPosition(Position.ZERO, true);
  db.log.error(
    { file: file.path, expected: formatChecksum(expected), found: found === null ? null : formatChecksum(found), ltx: ltxPath, movedTo: aside },
    `database ${db.name}: ${file.path} does not match its position and its LTX files cannot repair it (the last LTX ${ltxPath} says ` +
      `${formatChecksum(expected)}, the database file has ${found === null ? "no valid SQLite header" : formatChecksum(found)}); moved it to ${aside} ` +
      `and dropped its position: the database is not served until the primary has sent it again`,
  );
}

/** The database file's checksum (page checksums recomputed); null when it is not a SQLite database. */
function checksumOrNull(db: Database, readAhead?: Buffer): bigint | null {
  try {
    computeChecksums(db, readAhead);
  } catch (err) {
    if (err instanceof StoreError && err.code === "STORE_NOT_A_DATABASE") {
      db.checksums.clear();
      return null;
    }
    throw err;
  }
  return db.checksums.checksum;
}

/**
 * The file holds the position's pages: exactly, or with pages past `commit` that a cut right
 * after the commit did not make yet (VACUUM in rollback-journal mode); those are cut now.
 */
function matchesCutTo(db: Database, commit: number, expected: bigint): boolean {
  const exact = db.checksums.checksum === expected;
  if (!exact && (db.checksums.pageCount <= commit || db.checksums.checksumAfter(new Map(), commit) !== expected)) return false;
  const cut = commit * db.pageSize;
  if (db.files.database.size() > cut) db.files.database.truncate(cut);
  db.checksums.resize(commit);
  return true;
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
function lastCompleteLtx(db: Database): DecodedFile | null {
  const files = db.ltx.list();
  if (files.length === 0) return null;
  const newestMtime = mtimeOf(files[files.length - 1].path);
  let good: DecodedFile | null = null;
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

/** At most this many trailing files are searched or replayed when they do not reach back to a snapshot. */
const MAX_REPLAY_FILES = 1024;

/**
 * The files to replay after an interrupted apply whose marker names `from`: from the file that
 * holds `from` to the newest (or from the newest snapshot among them: it rewrites every page).
 * "none": no file reaches `from` (the crash came before the batch was installed: no page of it
 * was written); null: the files do not form an unbroken run from there (retention or damage).
 */
function runFrom(db: Database, from: number): LtxFileInfo[] | "none" | null {
  const files = db.ltx.list();
  let first = files.findIndex((f) => f.maxTxid >= from);
  if (first < 0) return "none";
  for (let i = files.length - 1; i > first; i--) {
    if (files[i].minTxid === 1) {
      first = i;
      break;
    }
  }
  if (files[first].minTxid > from && files[first].minTxid !== 1) return null;
  return chained(files.slice(first));
}

/**
 * The files after the one whose post-apply checksum is `checksum` (the file is at that
 * position), within the trailing run; null when none is.
 */
function runAfterPosition(db: Database, checksum: bigint): LtxFileInfo[] | null {
  const run = trailingRun(db);
  if (!run) return null;
  for (let i = run.length - 2; i >= 0; i--) {
    let post: bigint;
    try {
      post = readPostApplyChecksum(run[i].path);
    } catch {
      return null;
    }
    if (post === checksum) return run.slice(i + 1);
  }
  return null;
}

/**
 * The trailing run of consecutive files: back from the newest to the newest snapshot in it, at
 * most `max` files. Re-applying, in order, a run of files that starts at or before the first
 * one not fully applied always yields the state after the last one (later versions of a page
 * overwrite earlier ones; cuts and growth happen in order). Null when there is only the last file.
 */
function trailingRun(db: Database, max = MAX_REPLAY_FILES): LtxFileInfo[] | null {
  const files = db.ltx.list();
  let first = files.length - 1;
  while (
    first > 0 &&
    files.length - first < max &&
    files[first].minTxid !== 1 &&
    files[first - 1].maxTxid + 1 === files[first].minTxid
  ) {
    first--;
  }
  return first >= files.length - 1 ? null : files.slice(first);
}

function chained(files: LtxFileInfo[]): LtxFileInfo[] | null {
  for (let i = 1; i < files.length; i++) if (files[i - 1].maxTxid + 1 !== files[i].minTxid) return null;
  return files;
}

/** Writes `run`'s pages into the database file, in order; returns the files replayed (0: one could not be read). */
function replay(db: Database, run: readonly LtxFileInfo[], why: string): number {
  for (const f of run) {
    let ltx: DecodedFile;
    try {
      ltx = { ...decodeLtx(fs.readFileSync(f.path), f.path), path: f.path };
    } catch (err) {
      db.log.warn({ file: f.path, err: (err as Error).message }, "cannot replay LTX file");
      return 0;
    }
    writeFile(db, ltx);
  }
  if (!db.skipSync) db.files.database.sync();
  const from = run[0].minTxid;
  const to = run[run.length - 1].maxTxid;
  db.log.warn(
    { files: run.length, from, to },
    `database ${db.name}: replayed the trailing LTX files from TXID ${formatTxid(from)} to ${formatTxid(to)}, ${run.length} file(s): ${why}`,
  );
  return run.length;
}

function writeFile(db: Database, ltx: DecodedFile): void {
  const file = db.files.database;
  const { header } = ltx;
  for (const page of ltx.pages) file.write(page.data, page.data.length, (page.pgno - 1) * header.pageSize);
  file.truncate(header.commit * header.pageSize);
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
function computeChecksums(db: Database, readAhead?: Buffer): void {
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
  const readPage = file.pageReader(pageSize, readAhead);
  db.checksums.resize(pageCount);
  for (let pgno = 1; pgno <= pageCount; pgno++) {
    if (pgno !== lock) db.checksums.set(pgno, pageChecksum(pgno, readPage(pgno)));
  }
}

/** A database file with no LTX history (copied into data.dir): record it as a TXID 1 snapshot. */
function adoptExistingDatabase(db: Database, readAhead?: Buffer): void {
  // The checksums are the ones computeChecksums just took: the snapshot reads the file once more, to encode it.
  db.commitTransaction({
    commit: db.checksums.pageCount,
    pgnos: [], // a first transaction is a snapshot of every page up to the commit
    readPage: db.files.database.pageReader(db.pageSize, readAhead),
    sumsRecorded: true,
    always: true,
    durable: true,
    compress: false,
  });
  db.log.info({ pos: db.position.toString() }, "existing database adopted as a snapshot");
}
