import type { Database } from "../store/database.js";

/**
 * What the FUSE adapter needs from the core. The Store implements it; the adapter never reaches
 * further in.
 */
export interface MountedStore {
  /** Primary nodes accept writes; replicas serve read-only files. */
  readonly isPrimary: boolean;
  databaseNames(): string[];
  /** An existing (not dropped) database. */
  database(name: string): Database | undefined;
  /** Creates a database (or revives a dropped one) for a new file in the mount's root. */
  createDatabase(name: string): Database;
  /** Hostname of the primary while this replica is connected to it; null on the primary. */
  primaryHostname(): string | null;
  /** Replication lag in milliseconds (0 on the primary). */
  lagMs(): number;
  /** Changes whenever `.primary` or `.lag` content may have changed (for mtime). */
  statusVersion(): number;
}
