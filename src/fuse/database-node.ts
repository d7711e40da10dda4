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
    const st = this.db.files[this.kind].stat();
    if (!st) {
      // A database created but not yet written has no backing file contents yet.
      if (this.kind !== "database" || !this.db.exists) return null;
      const now = Date.now();
      return { mode: fs.constants.S_IFREG | this.mode(), size: 0, mtime: now, atime: now, ctime: now };
    }
    return {
      mode: fs.constants.S_IFREG | this.mode(),
      size: st.size,
      mtime: st.mtimeMs,
      atime: st.atimeMs,
      ctime: st.ctimeMs,
    };
  }

  read(buf: Buffer, len: number, pos: number): number {
    return this.db.read(this.kind, buf, len, pos);
  }

  private mode(): number {
    return this.authority !== "replica" || this.kind === "shm" ? 0o644 : 0o444;
  }
}
