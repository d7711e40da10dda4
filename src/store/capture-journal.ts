import { isJournalHeaderValid, parseDatabaseHeader } from "../sqlite/index.js";
import type { Database } from "./database.js";

/** How SQLite ended a rollback-journal transaction (DESIGN.md section 5). */
export type JournalInvalidation = "unlink" | "truncate" | "persist";

/**
 * Commit capture for the rollback-journal modes (DELETE, TRUNCATE, PERSIST).
 *
 * While the journal holds a valid header a write transaction is in progress, and every page
 * written to the database file is remembered. SQLite commits by invalidating the journal
 * (unlink, truncate to zero, or a zeroed header); on that request, before it is passed through,
 * the remembered pages become one LTX file.
 */
export class JournalCapture {
  private dirty = new Set<number>();
  private headerSeen = false;
  /**
   * The journal was checked and holds no transaction, and nothing touched it since: a database
   * write outside a journal (a WAL checkpoint) then costs no system call. Every change to the
   * journal file goes through Database, which calls `journalChanged`.
   */
  private knownInactive = false;

  constructor(private readonly db: Database) {}

  /** A transaction is in progress: the journal header carries SQLite's magic. */
  get active(): boolean {
    if (this.headerSeen) return true;
    if (this.knownInactive) return false;
    this.headerSeen = this.journalHeaderValid();
    this.knownInactive = !this.headerSeen;
    return this.headerSeen;
  }

  /** The journal file was written, cut, created or removed: `active` must look again. */
  journalChanged(): void {
    this.knownInactive = false;
  }

  onDatabaseWrite(position: number, length: number): void {
    const pageSize = this.db.pageSize;
    const first = Math.floor(position / pageSize) + 1;
    const last = Math.floor((position + length - 1) / pageSize) + 1;
    for (let pgno = first; pgno <= last; pgno++) this.dirty.add(pgno);
  }

  /** PERSIST mode commits by zeroing the header in place: catch it before it lands. */
  beforeJournalWrite(buf: Uint8Array, length: number, position: number): void {
    if (position !== 0 || length < 8 || !this.headerSeen) return;
    if (!isJournalHeaderValid(buf.subarray(0, length))) this.onInvalidate("persist");
  }

  afterJournalWrite(buf: Uint8Array, length: number, position: number): void {
    if (position === 0 && length >= 8 && isJournalHeaderValid(buf.subarray(0, length))) this.headerSeen = true;
  }

  /** The journal is being invalidated: a commit when pages changed, else a rollback. */
  onInvalidate(how: JournalInvalidation): void {
    if (!this.active) return;
    const valid = this.journalHeaderValid();
    const dirty = [...this.dirty].sort((a, b) => a - b);
    this.reset();
    if (!valid || dirty.length === 0) return;

    const db = this.db;
    const file = db.files.database;
    if (file.size() < 100) return;
    const header = parseDatabaseHeader(file.readAt(0, 100));
    db.pageSize = header.pageSize;
    const commit = header.pageCount > 0 ? header.pageCount : Math.ceil(file.size() / header.pageSize);
    const written = db.commitTransaction({
      commit,
      pgnos: dirty,
      readPage: file.pageReader(header.pageSize),
      // SQLite fsynced these pages into the database file before this commit; the journal's
      // removal may reach the disk before any later fsync, and recovery could not tell what
      // changed without the LTX. So a rollback-journal commit's LTX is durable before it passes.
      durable: true,
    });
    if (written) db.log.debug({ txid: db.position.txid, pages: dirty.length, how }, "journal commit captured");
  }

  reset(): void {
    this.dirty.clear();
    this.headerSeen = false;
    this.knownInactive = false;
  }

  private journalHeaderValid(): boolean {
    const journal = this.db.files.journal;
    if (!journal.exists() || journal.size() < 8) return false;
    return isJournalHeaderValid(journal.readAt(0, 28));
  }
}
