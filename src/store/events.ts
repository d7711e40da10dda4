import type { Position } from "../ltx/index.js";
import type { Database } from "./database.js";

/** Where a database change came from: a transaction on this node, or a file received from the primary. */
export type ChangeSource = "local" | "applied";

/** A transaction recorded in an LTX file and now part of the database (a drop is one with commit 0). */
export interface CommitEvent {
  type: "commit";
  db: Database;
  source: ChangeSource;
  /** The position after it. */
  position: Position;
  pageSize: number;
  /** Database size in pages after it; 0 when it dropped the database. */
  commit: number;
  /** The LTX header's timestamp (ms since the epoch). */
  timestamp: number;
  ltxPath: string;
}

/** What the Store tells its listeners, in the order it happened. */
export type StoreEvent =
  | CommitEvent
  | { type: "created"; db: Database }
  | { type: "dropped"; db: Database; source: ChangeSource; position: Position };

/**
 * What a local commit waits for before SQLite hears that it completed (synchronous replication,
 * a test's gate). Null: it does not wait, which is the default and the fast path.
 */
export type CommitWait = Promise<void> | null;
