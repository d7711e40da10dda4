import type { PageWriter } from "./apply.js";

/**
 * What SQLite clients may leave behind when this node stops being the primary, to put right
 * through the mount before anything is applied as a replica: a cut-off rollback-journal
 * transaction, and committed WAL frames that readers would stop seeing once the first replicated
 * file resets the -shm (folded into the database file; frames past `committedEnd` never committed).
 */
export type RepairJob = { db: string; kind: "rollback-journal" } | { db: string; kind: "fold-wal"; committedEnd: number };

export interface RepairResult {
  db: string;
  kind: RepairJob["kind"];
  /** Pages written back into the database file. */
  pages: number;
}

/**
 * Every write the node makes through its own mount (the mount agent, src/fuse/mount-agent.ts):
 * replicated pages, imports, and the repairs after a demotion.
 */
export interface MountWriter extends PageWriter {
  repair(jobs: readonly RepairJob[]): Promise<RepairResult[]>;
  /**
   * Takes SQLite's write lock on a database and keeps it until `releaseWrites`, through applies
   * and repairs meanwhile: its writers wait (SQLITE_BUSY), its readers go on.
   */
  holdWrites(db: string): Promise<void>;
  releaseWrites(db: string): Promise<void>;
}
