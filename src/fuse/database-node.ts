import * as fs from "node:fs";
import type { Database, FileKind } from "../store/database.js";
import { StoreError } from "../store/errors.js";

export interface NodeStat {
  mode: number;
  size: number;
  mtime: number;
  atime: number;
  ctime: number;
}

/**
 * `<db>`, `<db>-journal`, `<db>-wal` and `<db>-shm`: files backed by data.dir/dbs/<db>/.
 * On a replica the database, its journal and WAL frames are read-only (SQLite then reports a
 * readonly database), while WAL readers may still create `-wal`/`-shm` and write the `-shm`
 * (read marks and the index) as they must to read at all.
 */
export class DatabaseFileNode {
  constructor(
    readonly db: Database,
    readonly kind: FileKind,
    /** Asked on every write: a primary that loses its lease refuses writes on handles it opened. */
    private readonly isPrimary: () => boolean,
    /** Opened by the apply agent (O_NOATIME): writes replicated pages on a replica. */
    readonly apply = false,
  ) {}

  private get primary(): boolean {
    return this.isPrimary();
  }

  private get writable(): boolean {
    return this.primary || this.kind === "shm" || this.apply;
  }

  canOpenForWrite(): boolean {
    // Replica WAL readers open -wal read-write; their writes are refused in write().
    return this.writable || this.kind === "wal";
  }

  canCreate(): boolean {
    return this.primary || this.kind === "wal" || this.kind === "shm";
  }

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

  write(buf: Buffer, len: number, pos: number): void {
    this.assertWritable("write");
    if (this.apply && !this.primary) this.db.applyWrite(this.kind, buf, len, pos);
    else this.db.write(this.kind, buf, len, pos);
  }

  truncate(size: number): void {
    this.assertWritable("truncate");
    if (this.apply && !this.primary) this.db.applyTruncate(this.kind, size);
    else this.db.truncate(this.kind, size);
  }

  unlink(): void {
    if (!this.primary && this.kind !== "shm" && this.kind !== "wal") this.assertWritable("unlink");
    this.db.unlink(this.kind);
  }

  sync(): void {
    this.db.sync(this.kind);
  }

  private mode(): number {
    return this.primary || this.kind === "shm" ? 0o644 : 0o444;
  }

  private assertWritable(op: string): void {
    if (this.writable) return;
    throw new StoreError("STORE_READ_ONLY", `${this.db.name}: ${op} of ${this.kind} refused: this node is a replica (write on the primary)`);
  }
}
