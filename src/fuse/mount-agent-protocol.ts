/**
 * The one protocol between the daemon (mount-agent.ts) and its mount agent
 * (mount-agent-process.ts): JSON messages over the IPC channel of a forked child. Every request
 * names the database; every answer carries the request's id and either a result or an error code.
 */

export interface ApplyFileRef {
  /** An installed LTX file under data.dir (not on the mount). */
  path: string;
  /** Pages it holds and their size, so the agent can bound what it decodes ahead of the locks. */
  pages: number;
  pageSize: number;
}

interface RequestBase {
  id: number;
  db: string;
  /** Give up waiting for SQLite's locks after this long. */
  lockTimeoutMs: number;
}

export type MountAgentRequest =
  /**
   * Apply `files` in order under one hold of SQLite's locks: readers see the state before the
   * first file or after the last. `reopen`: the database was (re)created since the last request.
   * `resetWal`: the files replace every page, so the WAL's frames are discarded under the locks
   * (an import on the primary). Releases the locks it took; a write lock held by hold-writes stays.
   */
  | (RequestBase & { op: "apply"; files: ApplyFileRef[]; reopen: boolean; resetWal: boolean })
  /**
   * Take SQLite's write lock (WAL: the -shm WRITE byte; rollback journal: RESERVED) and keep it
   * after answering, through applies and folds, until release-writes: the database's writers
   * wait (SQLITE_BUSY), its readers go on.
   */
  | (RequestBase & { op: "hold-writes" })
  /** Let go of every lock held on the database. */
  | (RequestBase & { op: "release-writes" })
  /** Put back the pages of a cut-off rollback-journal transaction, then empty the journal. */
  | (RequestBase & { op: "rollback-journal" })
  /** Fold the WAL's committed frames (up to `committedEnd`) into the database file, then empty the WAL. */
  | (RequestBase & { op: "fold-wal"; committedEnd: number });

export const MOUNT_AGENT_ERROR_CODES = [
  /** A long-running SQLite transaction held its locks past lockTimeoutMs. */
  "AGENT_LOCK_TIMEOUT",
  /** The database (or the file the request needs) is not on the mount. */
  "AGENT_NOT_FOUND",
  /** An LTX file to apply could not be read or decoded. */
  "AGENT_BAD_LTX",
  /** Reading or writing through the mount failed (the errno is in the message). */
  "AGENT_IO",
  /** The agent process went away before it answered. */
  "AGENT_EXITED",
] as const;

export type MountAgentErrorCode = (typeof MOUNT_AGENT_ERROR_CODES)[number];

/** `result`: pages written (apply), restored (rollback-journal) or folded (fold-wal); 0 for the locks. */
export type MountAgentResponse = { id: number; ok: true; result: number } | { id: number; ok: false; code: MountAgentErrorCode; message: string };
