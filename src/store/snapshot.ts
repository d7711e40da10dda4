import { lockPgno, pageChecksum, type LtxHeader } from "../ltx/index.js";
import { WAL_FRAME_HEADER_SIZE, readJournalRecords } from "../sqlite/index.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import type { WrittenLtx } from "./ltx-directory.js";

/**
 * Writes a snapshot LTX (TXID 1..current, every page) of the committed state of a database to
 * `path`, for a replica that cannot catch up incrementally.
 *
 * It runs synchronously on the thread that serves FUSE, so no SQLite request can change the
 * files while it reads: the committed state is exactly what it sees, with two overlays for what
 * SQLite may have in flight: in WAL mode, committed frames not yet checkpointed; in a rollback
 * journal transaction, the journal's copies of pages already overwritten in the database file.
 */
export function writeSnapshot(db: Database, path: string, compress: boolean): WrittenLtx & { header: LtxHeader } {
  const pos = db.position;
  const commit = db.checksums.pageCount;
  const pageSize = db.pageSize;
  if (pos.txid === 0 || pageSize === 0) {
    throw new StoreError("STORE_NOT_FOUND", `database ${db.name}: nothing committed yet, no snapshot to send`);
  }
  const readPage = committedPageReader(db);
  const header = snapshotHeader(pageSize, commit, pos.txid);
  const lock = lockPgno(pageSize);
  const written = db.ltx.writeTo(path, header, compress, (enc) => {
    let rolling = 0n;
    for (let pgno = 1; pgno <= commit; pgno++) {
      if (pgno === lock) continue;
      const data = readPage(pgno);
      rolling ^= pageChecksum(pgno, data);
      enc.encodePage(pgno, data);
    }
    const post = (1n << 63n) | rolling;
    if (post !== pos.postApplyChecksum) {
      throw new StoreError(
        "STORE_CHECKSUM_MISMATCH",
        `database ${db.name}: snapshot pages checksum to ${post.toString(16)} but the position says ${pos.postApplyChecksum.toString(16)}`,
      );
    }
    return post;
  });
  return { ...written, header };
}

/** The header of a snapshot: every page of `commit`, TXIDs 1 to `maxTxid`, no pre-apply checksum. */
export function snapshotHeader(pageSize: number, commit: number, maxTxid: number): LtxHeader {
  return {
    flags: 0,
    pageSize,
    commit,
    minTxid: 1,
    maxTxid,
    timestamp: Date.now(),
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
}

/** Reads page `pgno` as of the last commit (see writeSnapshot). */
export function committedPageReader(db: Database): (pgno: number) => Uint8Array {
  const pageSize = db.pageSize;
  const walPages = db.wal.committedPages;
  const preImages = new Map<number, Uint8Array>();
  if (db.journal.active && db.files.journal.exists()) {
    const journal = db.files.journal;
    for (const rec of readJournalRecords((off, len) => journal.readAt(off, len), journal.size(), pageSize)) {
      // The first copy of a page in the journal is its committed content.
      if (!preImages.has(rec.pgno)) preImages.set(rec.pgno, rec.data);
    }
  }
  return (pgno) => {
    const pre = preImages.get(pgno);
    if (pre) return pre;
    const walOffset = walPages.get(pgno);
    if (walOffset !== undefined) return db.files.wal.readAt(walOffset + WAL_FRAME_HEADER_SIZE, pageSize);
    return db.files.database.readAt((pgno - 1) * pageSize, pageSize);
  };
}
