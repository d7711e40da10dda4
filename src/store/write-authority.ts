/**
 * Who may change a database on this node (DESIGN.md section 8). The Node decides it from its role;
 * the FUSE adapter asks on every open and write (src/fuse/write-access.ts), so a new state is a
 * new case there and here, not a flag in five places.
 */
export type WriteAuthority =
  /** This node is the primary: writes are captured into LTX files. */
  | "primary"
  /**
   * A replica, or a node that is stopping or has just lost the lease: read-only for every process
   * but the node's own mount agent (which applies what the primary sent); WAL readers may still
   * write the -shm, as they must to read at all.
   */
  | "replica"
  /**
   * On the primary, the mount agent holds SQLite's write lock and writes the pages: an import, or
   * the transactions of a replica that holds the HALT lock. No other writer can be in a
   * transaction; handles opened by others meanwhile are ordinary ones that may write once the
   * lock is let go.
   */
  | "held"
  /**
   * A replica that holds the primary's HALT lock (litefs run -with-halt-lock-on): writes are
   * captured as on the primary, and each commit reaches the primary before SQLite hears that it
   * completed. The mount agent may still write (the repairs when the lock ends).
   */
  | "halted";
