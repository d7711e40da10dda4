import * as fs from "node:fs";

/** Messages between the daemon (apply-agent.ts) and the apply agent (apply-agent-process.ts). */
/** Opened with O_NOATIME so the FUSE adapter can tell the agent's writable opens from an app's. */
export const APPLY_OPEN_FLAG = fs.constants.O_NOATIME;

export interface ApplyFileRef {
  /** An installed LTX file under data.dir (not on the mount). */
  path: string;
  /** Pages it holds and their size, so the agent can bound what it decodes ahead of the locks. */
  pages: number;
  pageSize: number;
}

/**
 * Apply `files` to database `db`, in order, under one hold of SQLite's locks: readers see the
 * state before the first file or after the last, nothing in between.
 */
export interface ApplyRequest {
  id: number;
  op: "apply";
  mnt: string;
  db: string;
  files: ApplyFileRef[];
  /** The database was (re)created since the last request: open its files afresh. */
  reopen: boolean;
  lockTimeoutMs: number;
}

export type ApplyResponse = { id: number; ok: true; pages: number } | { id: number; ok: false; error: string };
