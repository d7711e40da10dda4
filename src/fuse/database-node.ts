import * as fs from "node:fs";
import type { Database, FileKind } from "../store/database.js";
import type { WriteAuthority } from "../store/write-authority.js";

export interface NodeStat {
  mode: number;
  size: number;
  mtime: number;
  atime: number;
  ctime: number;
}

/**
 * `<db>`, `<db>-journal`, `<db>-wal` and `<db>-shm`: files backed by data.dir/dbs/<db>/. What
 * may be written through them is decided per handle (write-access.ts); this serves lookups and
 * reads. On a replica the mode says read-only (but for -shm), as SQLite expects.
 */
export class DatabaseFileNode {
  constructor(
    readonly db: Database,
    readonly kind: FileKind,
    private readonly authority: WriteAuthority,
  ) {}

  stat(): NodeStat | null {
    const out: NodeStat = { mode: 0, size: 0, mtime: 0, atime: 0, ctime: 0 };
    return statDatabaseFile(this.db, this.kind, this.authority, out) ? out : null;
  }

  read(buf: Buffer, len: number, pos: number): number {
    return this.db.read(this.kind, buf, len, pos);
  }

}

/**
 * Fills `out` with what a lookup of the database's `kind` file shows; false when it does not
 * exist. Allocates nothing of its own: getattr, the most frequent request, calls it directly.
 */
export function statDatabaseFile(db: Database, kind: FileKind, authority: WriteAuthority, out: NodeStat): boolean {
  const mode = fs.constants.S_IFREG | (authority !== "replica" || kind === "shm" ? 0o644 : 0o444);
  const st = db.files[kind].stat();
  if (!st) {
    // A database created but not yet written has no backing file contents yet.
    if (kind !== "database" || !db.exists) return false;
    const now = Date.now();
    out.mode = mode;
    out.size = 0;
    out.mtime = out.atime = out.ctime = now;
    return true;
  }
  out.mode = mode;
  out.size = st.size;
  out.mtime = st.mtimeMs;
  out.atime = st.atimeMs;
  out.ctime = st.ctimeMs;
  return true;
}
