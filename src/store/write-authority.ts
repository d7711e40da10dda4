/**
 * Who may change a database on this node (DESIGN.md section 8). The Node decides it from its role;
 * the FUSE adapter asks on every open and write (src/fuse/write-access.ts), so a new state is a
 * new case there and here, not a flag in five places. Coming with a later change: "halted" (a
 * replica holding the primary's HALT lock: writes captured and sent to the primary).
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
   * The primary is replacing this database with an imported file: the mount agent writes it
   * (holding SQLite's locks, so no other writer can be in a transaction); handles opened by
   * others meanwhile are ordinary ones that may write once the import is done.
   */
  | "importing";
