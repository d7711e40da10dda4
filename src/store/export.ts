import * as fs from "node:fs";
import { CHECKSUM_FLAG, lockPgno, pageChecksum, type Position } from "../ltx/index.js";
import type { Database } from "./database.js";
import { StoreError } from "./errors.js";
import { BufferedWriter } from "./ltx-directory.js";
import { committedPageReader } from "./snapshot.js";

/**
 * Writes the database as of its last commit, as a plain SQLite file, to `path` (outside the
 * mount), and returns the position it holds. Synchronous on the thread that serves FUSE, like a
 * snapshot, for the same reason: no request can change the files while it reads, so the copy is
 * exactly one position (checked against the position's checksum before it is handed out).
 */
export function writeDatabaseImage(db: Database, path: string): { position: Position; pageSize: number; pageCount: number } {
  const position = db.position;
  const pageSize = db.pageSize;
  const pageCount = db.checksums.pageCount;
  if (!db.exists || position.txid === 0 || pageSize === 0) {
    throw new StoreError("STORE_NOT_FOUND", `database ${db.name} does not exist on this node`);
  }
  const readPage = committedPageReader(db);
  const lock = lockPgno(pageSize);
  const fd = fs.openSync(path, "w", 0o600);
  try {
    const out = new BufferedWriter(fd);
    let rolling = 0n;
    for (let pgno = 1; pgno <= pageCount; pgno++) {
      const page = readPage(pgno);
      if (pgno !== lock) rolling ^= pageChecksum(pgno, page);
      out.write(page);
    }
    out.flush();
    if ((CHECKSUM_FLAG | rolling) !== position.postApplyChecksum) {
      throw new StoreError(
        "STORE_CHECKSUM_MISMATCH",
        `database ${db.name}: the exported pages checksum to ${(CHECKSUM_FLAG | rolling).toString(16)} but position ${position.toString()} says otherwise`,
      );
    }
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  return { position, pageSize, pageCount };
}
