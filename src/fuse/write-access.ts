import type { Database, FileKind } from "../store/database.js";
import { StoreError } from "../store/errors.js";
import type { CommitWait } from "../store/events.js";
import type { WriteAuthority } from "../store/write-authority.js";

/**
 * What one open handle may do to its file: decided once at open, from the database's write
 * authority, the file's kind and who opened it, and checked again on every write (authority
 * changes under open handles: a primary that loses its lease refuses writes at once).
 */
export type HandleAccess =
  /** No writes: a read-only open, or a replica's WAL reader that opened -wal read-write. */
  | "read"
  /** The primary: every commit is captured into an LTX file. */
  | "captured"
  /** The node's mount agent on a replica (pages already captured on the primary, repairs) or during an import. */
  | "apply"
  /**
   * The -shm, on any node: SQLite's wal-index and read marks, never captured, written by readers
   * too (and through mmap, by whichever writable handle the kernel picks).
   */
  | "index";

/**
 * The one decision (DESIGN.md section 8). `fromMountAgent` looks at the caller's process ID as
 * the kernel reports it, never at anything the caller chooses (an open flag, a name); it is
 * asked only on a replica. Null: the open is refused (EACCES).
 */
export function accessFor(authority: WriteAuthority, kind: FileKind, wantsWrite: boolean, fromMountAgent: () => boolean): HandleAccess | null {
  if (!wantsWrite) return "read";
  // A handle opened on the primary stays usable for the -shm after a demotion: its connection is a reader now.
  if (kind === "shm") return "index";
  switch (authority) {
    case "primary":
      return "captured";
    case "replica":
      if (fromMountAgent()) return "apply";
      // SQLite's WAL readers open -wal read-write even on a read-only connection; they never write it.
      if (kind === "wal") return "read";
      return null;
    case "held":
    case "halted":
      return fromMountAgent() ? "apply" : "captured";
  }
}


/** The authority a handle's access needs right now; a mismatch refuses the write. */
function stillAllowed(access: HandleAccess, authority: WriteAuthority): boolean {
  switch (access) {
    case "read":
      return false;
    case "captured":
      return authority === "primary" || authority === "halted";
    case "apply":
      return authority !== "primary";
    case "index":
      return true;
  }
}

function readOnly(db: Database, kind: FileKind, op: string, authority: WriteAuthority): StoreError {
  const why = {
    primary: "this handle was opened read-only",
    replica: "this node is a replica (write on the primary)",
    held: "an import or a replica's HALT lock holds the database's write lock",
    halted: "under the HALT lock a replica changes the database, it does not drop it",
  }[authority];
  return new StoreError("STORE_READ_ONLY", `${db.name}: ${op} of ${kind} refused: ${why}`);
}

/** A write through a handle with `access`; returns what the reply must wait for (see CommitWait). */
export function writeWith(access: HandleAccess, authority: WriteAuthority, db: Database, kind: FileKind, buf: Buffer, len: number, pos: number): CommitWait {
  if (!stillAllowed(access, authority)) throw readOnly(db, kind, "write", authority);
  if (access === "apply") {
    db.applyWrite(kind, buf, len, pos);
    return null;
  }
  return db.write(kind, buf, len, pos);
}

export function truncateWith(access: HandleAccess, authority: WriteAuthority, db: Database, kind: FileKind, size: number): CommitWait {
  if (!stillAllowed(access, authority)) throw readOnly(db, kind, "truncate", authority);
  if (access === "apply") {
    db.applyTruncate(kind, size);
    return null;
  }
  return db.truncate(kind, size);
}

/**
 * An unlink by any process. On a replica only SQLite's own leftovers may go: the -shm, and a
 * -wal with no frames in it (WAL readers create it empty); under the HALT lock its writers'
 * journals and WAL too, never the database (a HALT lock holder changes it, it does not drop it).
 */
export function unlinkWith(authority: WriteAuthority, db: Database, kind: FileKind): CommitWait {
  const allowed =
    authority === "primary" || (authority === "halted" && kind !== "database") || kind === "shm" || (kind === "wal" && db.files.wal.size() === 0);
  if (!allowed) throw readOnly(db, kind, "unlink", authority);
  return db.unlink(kind);
}
