/**
 * Putting a SQLite database file back in order after its writer is gone: rolling back a hot
 * journal, and folding a WAL's committed transactions into the database file. One implementation
 * for both callers:
 * - startup recovery (recover.ts), on the backing files under data.dir, which nothing has open;
 * - the mount agent (fuse/mount-agent-process.ts) after a demotion, through the mount, under SQLite's locks.
 *
 * Everything goes through the small synchronous RepairFile interface: no I/O of its own, no
 * locking, no syncing, and it never deletes or empties the journal or WAL (callers do, each in
 * its own way). The file-format knowledge is in src/sqlite.
 */
import {
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  isWalHeaderValid,
  parseWalHeader,
  readJournalRecords,
  scanWal,
  walFrameSize,
} from "../sqlite/index.js";

/** A file being repaired or read from: synchronous, positional. */
export interface RepairFile {
  /** Size in bytes. */
  size(): number;
  /** `length` bytes at `offset`; fewer (or zero-filled) only past the end of the file. */
  read(offset: number, length: number): Uint8Array;
  /** Writes all of `data` at `offset`, growing the file as needed. */
  write(data: Uint8Array, offset: number): void;
  truncate(size: number): void;
}

export interface JournalRollback {
  /**
   * False when the journal has no header SQLite would play back (missing magic, torn header, or
   * a header not wholly in the file): nothing was changed.
   */
  valid: boolean;
  /** Pages written back into the database file. */
  restored: number;
  /** The journal's page size (0 when not valid). */
  pageSize: number;
  /** Database size in pages before the transaction: the database file was truncated to it. */
  initialPageCount: number;
}

/**
 * Rolls back a hot journal as SQLite's pager_playback does: writes back every page the journal
 * holds (as readJournalRecords yields them), then truncates the database file to the journal
 * header's initial page count. A journal without a valid header changes nothing (valid=false).
 * The journal itself is left as it is.
 */
export function rollbackJournal(database: RepairFile, journal: RepairFile): JournalRollback {
  const records = readJournalRecords((offset, length) => journal.read(offset, length), journal.size());
  let restored = 0;
  for (;;) {
    const next = records.next();
    if (next.done) {
      const { header } = next.value;
      // No header means no record was yielded either: nothing has been written.
      if (header === null) return { valid: false, restored: 0, pageSize: 0, initialPageCount: 0 };
      database.truncate(header.initialPageCount * header.pageSize);
      return { valid: true, restored, pageSize: header.pageSize, initialPageCount: header.initialPageCount };
    }
    const { pgno, data } = next.value;
    // Every record's data is exactly one page of the journal's page size.
    database.write(data, (pgno - 1) * data.length);
    restored++;
  }
}

export interface WalSalts {
  salt1: number;
  salt2: number;
}

export interface WalFold {
  /**
   * False when the WAL was left alone: its header is invalid (or the file is shorter than one),
   * or its salts differ from the expected ones. The database file was not touched then.
   */
  folded: boolean;
  /** Pages written into the database file. */
  pages: number;
  /** The WAL's page size (0 when not folded). */
  pageSize: number;
  /** Committed transactions not folded because they end past `committedEnd`. */
  dropped: number;
  /** Database size in pages after the last folded transaction (0 when none was folded). */
  commitSize: number;
}

const NOT_FOLDED: WalFold = { folded: false, pages: 0, pageSize: 0, dropped: 0, commitSize: 0 };

/**
 * Copies the latest version of each page written by the WAL's committed transactions that end at
 * or before byte offset `committedEnd` into the database file, as a checkpoint would, and
 * truncates it to the last such transaction's commit size; pages above that size are not copied.
 * Later transactions are ignored (counted in `dropped`). Does nothing when the WAL header is
 * invalid or, with `expectSalts`, the WAL belongs to another generation. The WAL is left as it is.
 *
 * A transaction "ends" at the end of its commit frame: sector-padding frames after it (repeats of
 * the commit frame, psow=0) do not count, as they change nothing. That makes both ways callers
 * know the end of what was committed agree for every transaction scanWal reports:
 * - an LTX's walOffset + walSize (recovery) is the end of its commit frame, padding written
 *   after the commit frame not included;
 * - WalCapture's committedEnd (demotion repair) is the end of the last captured transaction,
 *   padding included.
 */
export function foldWal(database: RepairFile, wal: RepairFile, committedEnd: number, expectSalts?: WalSalts): WalFold {
  const size = wal.size();
  const read = (offset: number, length: number): Uint8Array => wal.read(offset, length);
  if (size < WAL_HEADER_SIZE) return NOT_FOLDED;
  const headerBytes = read(0, WAL_HEADER_SIZE);
  if (!isWalHeaderValid(headerBytes)) return NOT_FOLDED;
  if (expectSalts) {
    const { salt1, salt2 } = parseWalHeader(headerBytes);
    if (salt1 !== expectSalts.salt1 || salt2 !== expectSalts.salt2) return NOT_FOLDED;
  }

  const scan = scanWal(read, size);
  const { pageSize } = scan.header;
  const frameSize = walFrameSize(pageSize);
  const latest = new Map<number, number>();
  let commitSize = 0;
  let dropped = 0;
  for (const tx of scan.transactions) {
    const commitFrameEnd = tx.offset + tx.size - tx.paddingFrames * frameSize;
    if (dropped > 0 || commitFrameEnd > committedEnd) {
      dropped++;
      continue;
    }
    for (const [pgno, offset] of tx.pages) latest.set(pgno, offset);
    commitSize = tx.commitSize;
  }

  let pages = 0;
  for (const [pgno, offset] of latest) {
    if (pgno > commitSize) continue;
    database.write(read(offset + WAL_FRAME_HEADER_SIZE, pageSize), (pgno - 1) * pageSize);
    pages++;
  }
  if (commitSize > 0) database.truncate(commitSize * pageSize);
  return { folded: true, pages, pageSize, dropped, commitSize };
}
